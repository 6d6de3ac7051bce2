// glibc's allocator statistics and tuning (mallinfo2, malloc_trim, mallopt), which Swift's
// Glibc module does not bring in.
#include <malloc.h>
