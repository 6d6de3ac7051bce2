// libFuzzer's driver, called from each fuzz target's own main (SwiftPM gives executables a
// main of their own, so libFuzzer's is not linked).
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
