// Compiled against one layer library only, with PROBE_HEADER naming a header
// of some layer (tests/CMakeLists.txt, layering.* tests): it must compile when
// that layer may see the header and fail when it may not.
#include PROBE_HEADER

int flawlens_layering_probe() { return 0; }
