// The most threads an engine runs: the threaded module starts
// min(hardwareConcurrency, 8) - 1 pool workers (PTHREAD_POOL_SIZE in
// CMakeLists.txt), and more threads than that would wait for workers that are
// never started. The engine, the worker and the page's thread plan read it here.
export const kMaxThreads = 8;
