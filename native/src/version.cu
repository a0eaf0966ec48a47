// Library identity, for diagnostics: the toolkit here has no cuobjdump, so the compiled
// architectures are recorded at build time (OPT_ARCHS, set by CMake).
#include "opt_kernels.h"

#ifndef OPT_ARCHS
#  define OPT_ARCHS "unknown"
#endif
#ifndef OPT_VERSION
#  define OPT_VERSION "0.0.0"
#endif

extern "C" {
OPT_API const char* opt_kernels_version(void) { return OPT_VERSION; }
OPT_API const char* opt_kernels_archs(void) { return OPT_ARCHS; }
}
