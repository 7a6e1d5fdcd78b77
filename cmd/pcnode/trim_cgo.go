//go:build linux && cgo

package main

/*
#include <dlfcn.h>
#include <stddef.h>

typedef int (*pc_trim_fn)(size_t);

// pc_malloc_trim calls the C library's malloc_trim(0) when it has one
// (glibc), found at run time so that a build against another C library
// still links. Returns 1 if memory was released, 0 if not, -1 without
// malloc_trim.
static int pc_malloc_trim(void) {
	pc_trim_fn fn = (pc_trim_fn)dlsym(RTLD_DEFAULT, "malloc_trim");
	if (fn == NULL) {
		return -1;
	}
	return fn(0);
}
*/
import "C"

// trimCHeap gives the C allocator's free pages back to the system. Pebble
// allocates its memtables and block cache with malloc, outside Go's heap;
// glibc keeps what pebble frees (a flushed memtable, evicted cache blocks)
// in its arenas, resident, and returns only what sits at the top of an
// arena unless asked. malloc_trim(0) also releases the free pages in the
// middle. It reports whether the C library released anything, and whether
// it has malloc_trim at all.
func trimCHeap() (released, supported bool) {
	r := C.pc_malloc_trim()
	return r == 1, r >= 0
}
