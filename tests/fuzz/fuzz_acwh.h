/*
 * fuzz_acwh.h - the libFuzzer entry point of the AC webhook body parser,
 * shared by the fuzz target and the plain corpus replay.
 */
#ifndef OSY_FUZZ_ACWH_H
#define OSY_FUZZ_ACWH_H

#include <stddef.h>
#include <stdint.h>

/** @brief Feed one input to the parser; aborts if an invariant breaks.
 *  @returns 0 (libFuzzer's convention). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* OSY_FUZZ_ACWH_H */
