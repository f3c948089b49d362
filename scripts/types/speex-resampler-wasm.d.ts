/**
 * The package ships an Emscripten module without type declarations; these cover the part of the
 * SpeexDSP resampler API scripts/bench.ts calls (pointers and lengths are byte offsets/counts into
 * the module's own memory, as in the C API).
 */
declare module '@echogarden/speex-resampler-wasm/simd' {
  export interface SpeexResamplerModule {
    /** Views over the module's memory; replaced when the memory grows, so read them per call. */
    readonly HEAP16: Int16Array;
    readonly HEAP32: Int32Array;
    readonly HEAPU32: Uint32Array;
    _malloc(bytes: number): number;
    _free(pointer: number): void;
    _speex_resampler_init(
      channels: number,
      inputRateHz: number,
      outputRateHz: number,
      quality: number,
      errorPointer: number,
    ): number;
    /** in/out length pointers hold capacities on entry and the counts consumed/written on return. */
    _speex_resampler_process_int(
      state: number,
      channel: number,
      inputPointer: number,
      inputLengthPointer: number,
      outputPointer: number,
      outputLengthPointer: number,
    ): number;
    _speex_resampler_reset_mem(state: number): number;
    _speex_resampler_destroy(state: number): void;
  }
  const createSpeexResamplerModule: () => Promise<SpeexResamplerModule>;
  export default createSpeexResamplerModule;
}
