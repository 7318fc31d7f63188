// The page's message regions: a transient status line (role=status), one
// dismissable error (role=alert) and polite announcements for screen readers.

const kStatusMs = 8000;

export class Messages {
  // els: {status, alert, alertText, alertClose, announce}; errorLog: array
  // that collects every error shown (read by the test hook).
  constructor(els, errorLog = []) {
    this.els = els;
    this.errorLog = errorLog;
    this.statusTimer = 0;
    els.alertClose.addEventListener('click', () => this.clearError());
  }

  // A non-sticky message clears itself; sticky ones stay until replaced
  // (progress of long jobs).
  setStatus(message, { sticky = false } = {}) {
    const status = this.els.status;
    status.textContent = message;
    clearTimeout(this.statusTimer);
    if (!sticky && message) this.statusTimer = setTimeout(() => { status.textContent = ''; }, kStatusMs);
  }

  showError(message) {
    this.errorLog.push(message);
    console.warn('[flawlens]', message);
    this.els.alertText.textContent = message;
    this.els.alert.hidden = false;
  }

  clearError() {
    this.els.alert.hidden = true;
    this.els.alertText.textContent = '';
  }

  announce(message) {
    this.els.announce.textContent = message;
  }
}
