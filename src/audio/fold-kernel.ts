/**
 * The resamplers' one hot loop, compiled at module load to a small WebAssembly SIMD function.
 *
 * Both resamplers reduce to the same primitive once their linear-phase symmetry is folded (see
 * resampler.ts): for every output i, over a window of K = 2m samples,
 *
 *   S[i] = sum_j P[j] * (a[i + j] + a[i + K-1-j])      D[i] = sum_j Q[j] * (b[i + j] - b[i + K-1-j])
 *
 * for j < m, then S + D (plus c * e[i + m] for the decimator's centre tap) and, for the
 * interpolator, S - D, each rounded to the nearest integer (ties to even) and saturated to int16.
 * Plain JS did this in scalar doubles at ~2.5 flops per cycle, which left the decimator at ~3 µs
 * per 20 ms frame; four float32 lanes per instruction take the whole loop to well under 1 µs.
 * Float32 is ample: the inputs are int16 values (exact in float32) and the accumulated rounding
 * error stays within a few thousandths of an int16 step, so it only tips outputs that sit that
 * close to a rounding boundary (about 1 in 1000, by one step; the unit tests bound this against a
 * float64 reference). Saturation is the int16 clamp: band-limited full-scale input overshoots.
 *
 * Each lane computes its own output with the same instruction sequence, so results do not depend
 * on which lane (or which call) an output lands in: the callers' chunking guarantee holds.
 *
 * The function is generated rather than written as WAT so the taps become immediates and the
 * pair loop is unrolled; it is emitted directly as bytecode because the runtime has no assembler.
 * The filter design, the folding and all state and chunking logic stay in resampler.ts.
 */

/** Caller-filled inputs and kernel-filled outputs, as views over the kernel's memory. */
export interface FoldKernel {
  /** `a`: the window of output 0 starts at index 0. Holds maxOutputs + K - 1 samples (+ padding). */
  readonly sumInput: Float32Array;
  /** `b`: the same array as `sumInput` when the kernel was built with a shared input. */
  readonly diffInput: Float32Array;
  /** `e`, for the centre tap: output i reads index i + K/2. Empty without a centre tap. */
  readonly centreInput: Float32Array;
  /** S + D (+ centre) per output, rounded and saturated. */
  readonly sumPlusDiff: Int16Array;
  /** S - D per output, rounded and saturated. Empty unless requested. */
  readonly sumMinusDiff: Int16Array;
  /** Computes outputs i < count (count <= maxOutputs). */
  run(count: number): void;
}

export interface FoldKernelOptions {
  /** P: one per symmetric pair; the window is twice as long. */
  sumTaps: Float64Array;
  /** Q: the antisymmetric half, same length. */
  diffTaps: Float64Array;
  maxOutputs: number;
  /** S and D read the same input (the interpolator), which halves the loads. */
  sharedInput: boolean;
  /** c: weight of the centre input, or undefined for none. */
  centreTap?: number;
  /** Also produce S - D (the interpolator's mirrored phase). */
  withDifference: boolean;
}

const SIMD_LANES = 4;
const FLOAT32_BYTES = 4;
const WASM_PAGE_BYTES = 65_536;

// Binary encoding (https://webassembly.github.io/spec/core/binary/), only what the kernel uses.
const OP_BLOCK = 0x02;
const OP_LOOP = 0x03;
const OP_BR = 0x0c;
const OP_BR_IF = 0x0d;
const OP_END = 0x0b;
const OP_LOCAL_GET = 0x20;
const OP_LOCAL_SET = 0x21;
const OP_LOCAL_TEE = 0x22;
const OP_I32_CONST = 0x41;
const OP_I32_GE_U = 0x4f;
const OP_I32_ADD = 0x6a;
const BLOCK_TYPE_EMPTY = 0x40;
const TYPE_I32 = 0x7f;
const TYPE_V128 = 0x7b;
const TYPE_FUNC = 0x60;
const SIMD_PREFIX = 0xfd;
const SIMD_V128_LOAD = 0x00;
const SIMD_V128_STORE = 0x0b;
const SIMD_V128_CONST = 0x0c;
const SIMD_F32X4_ADD = 0xe4;
const SIMD_F32X4_SUB = 0xe5;
const SIMD_F32X4_MUL = 0xe6;
const SIMD_F32X4_NEAREST = 0x6a;
const SIMD_I32X4_TRUNC_SAT_F32X4_S = 0xf8;
const SIMD_I16X8_NARROW_I32X4_S = 0x85;
const SIMD_V128_STORE64_LANE = 0x5b;
const OP_I32_SHR_U = 0x76;
/** log2 of the alignment the accesses promise: whole elements, not whole vectors. */
const FLOAT32_ALIGNMENT_LOG2 = 2;
const INT16_ALIGNMENT_LOG2 = 1;
const INT16_BYTES = 2;
const SECTION_TYPE = 1;
const SECTION_FUNCTION = 3;
const SECTION_MEMORY = 5;
const SECTION_EXPORT = 7;
const SECTION_CODE = 10;
const EXPORT_FUNCTION = 0x00;
const EXPORT_MEMORY = 0x02;
const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

function unsignedLeb128(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest >>>= 7;
    if (rest !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest !== 0);
  return bytes;
}

function signedLeb128(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

function vector(items: readonly number[][]): number[] {
  return [...unsignedLeb128(items.length), ...items.flat()];
}

function section(id: number, content: readonly number[]): number[] {
  return [id, ...unsignedLeb128(content.length), ...content];
}

function name(text: string): number[] {
  return vector([...text].map((c) => [c.charCodeAt(0)]));
}

function simd(opcode: number): number[] {
  return [SIMD_PREFIX, ...unsignedLeb128(opcode)];
}

function splatF32x4(value: number): number[] {
  const lanes = new DataView(new ArrayBuffer(SIMD_LANES * FLOAT32_BYTES));
  for (let lane = 0; lane < SIMD_LANES; lane++) lanes.setFloat32(lane * FLOAT32_BYTES, value, true);
  return [...simd(SIMD_V128_CONST), ...new Uint8Array(lanes.buffer)];
}

interface Layout {
  sumInputByte: number;
  diffInputByte: number;
  centreInputByte: number;
  sumPlusDiffByte: number;
  sumMinusDiffByte: number;
}

/**
 * fold(endByte): for (i = 0; i < endByte; i += 16) computes four outputs at once. Lane l of the
 * vector loaded at element i + j is input i + l + j: consecutive outputs' windows are consecutive.
 */
function foldFunctionBody(options: FoldKernelOptions, layout: Layout): number[] {
  const { sumTaps, diffTaps, sharedInput, centreTap, withDifference } = options;
  const pairs = sumTaps.length;
  const window = 2 * pairs;
  // Locals: 0 = endByte (param), then the float byte offset i, and the vectors.
  const END = 0;
  const I = 1;
  const SUM = 2;
  const DIFF = 3;
  const NEAR = 4;
  const FAR = 5;
  const loadAt = (baseByte: number, element: number): number[] => [
    OP_LOCAL_GET, I,
    ...simd(SIMD_V128_LOAD), FLOAT32_ALIGNMENT_LOG2, ...unsignedLeb128(baseByte + element * FLOAT32_BYTES),
  ];
  const zero = splatF32x4(0);
  const code: number[] = [
    OP_BLOCK, BLOCK_TYPE_EMPTY,
    OP_LOOP, BLOCK_TYPE_EMPTY,
    OP_LOCAL_GET, I, OP_LOCAL_GET, END, OP_I32_GE_U, OP_BR_IF, 1,
    ...zero, OP_LOCAL_SET, SUM,
    ...zero, OP_LOCAL_SET, DIFF,
  ];
  for (let pair = 0; pair < pairs; pair++) {
    const far = window - 1 - pair;
    code.push(
      ...loadAt(layout.sumInputByte, pair), OP_LOCAL_TEE, NEAR,
      ...loadAt(layout.sumInputByte, far), OP_LOCAL_TEE, FAR,
      ...simd(SIMD_F32X4_ADD), ...splatF32x4(sumTaps[pair]!), ...simd(SIMD_F32X4_MUL),
      OP_LOCAL_GET, SUM, ...simd(SIMD_F32X4_ADD), OP_LOCAL_SET, SUM,
    );
    if (sharedInput) {
      code.push(OP_LOCAL_GET, NEAR, OP_LOCAL_GET, FAR);
    } else {
      code.push(...loadAt(layout.diffInputByte, pair), ...loadAt(layout.diffInputByte, far));
    }
    code.push(
      ...simd(SIMD_F32X4_SUB), ...splatF32x4(diffTaps[pair]!), ...simd(SIMD_F32X4_MUL),
      OP_LOCAL_GET, DIFF, ...simd(SIMD_F32X4_ADD), OP_LOCAL_SET, DIFF,
    );
  }
  if (centreTap !== undefined) {
    code.push(
      ...loadAt(layout.centreInputByte, pairs), ...splatF32x4(centreTap), ...simd(SIMD_F32X4_MUL),
      OP_LOCAL_GET, SUM, ...simd(SIMD_F32X4_ADD), OP_LOCAL_SET, SUM,
    );
  }
  const toInt32 = [...simd(SIMD_F32X4_NEAREST), ...simd(SIMD_I32X4_TRUNC_SAT_F32X4_S)];
  // Narrowing packs S + D into lanes 0-3 and S - D (or S + D again) into lanes 4-7; each half is
  // stored as one 64-bit lane at int16 offset i / 2.
  code.push(OP_LOCAL_GET, SUM, OP_LOCAL_GET, DIFF, ...simd(SIMD_F32X4_ADD), ...toInt32);
  if (withDifference) code.push(OP_LOCAL_GET, SUM, OP_LOCAL_GET, DIFF, ...simd(SIMD_F32X4_SUB), ...toInt32);
  else code.push(OP_LOCAL_TEE, NEAR, OP_LOCAL_GET, NEAR);
  code.push(...simd(SIMD_I16X8_NARROW_I32X4_S), OP_LOCAL_SET, NEAR);
  const storeHalf = (baseByte: number, lane: number): number[] => [
    OP_LOCAL_GET, I, OP_I32_CONST, 1, OP_I32_SHR_U, OP_LOCAL_GET, NEAR,
    ...simd(SIMD_V128_STORE64_LANE), INT16_ALIGNMENT_LOG2, ...unsignedLeb128(baseByte), lane,
  ];
  code.push(...storeHalf(layout.sumPlusDiffByte, 0));
  if (withDifference) code.push(...storeHalf(layout.sumMinusDiffByte, 1));
  code.push(
    OP_LOCAL_GET, I, OP_I32_CONST, ...signedLeb128(SIMD_LANES * FLOAT32_BYTES), OP_I32_ADD, OP_LOCAL_SET, I,
    OP_BR, 0,
    OP_END,
    OP_END,
    OP_END,
  );
  const locals = vector([
    [...unsignedLeb128(1), TYPE_I32],
    [...unsignedLeb128(4), TYPE_V128],
  ]);
  const body = [...locals, ...code];
  return [...unsignedLeb128(body.length), ...body];
}

/** Builds a kernel (one small WebAssembly instance with its own memory) for these taps. */
export function createFoldKernel(options: FoldKernelOptions): FoldKernel {
  const { sumTaps, diffTaps, maxOutputs, sharedInput, centreTap, withDifference } = options;
  if (diffTaps.length !== sumTaps.length) throw new RangeError('fold kernel: tap counts differ');
  const window = 2 * sumTaps.length;
  // The last vector of a run may reach 3 outputs past `count`: pad so it stays in bounds.
  const paddedOutputs = Math.ceil(maxOutputs / SIMD_LANES) * SIMD_LANES;
  const inputLength = paddedOutputs + window - 1;
  const inputBytes = inputLength * FLOAT32_BYTES;
  const outputBytes = paddedOutputs * INT16_BYTES;
  let nextByte = 0;
  const allocate = (bytes: number): number => {
    const at = nextByte;
    nextByte += bytes;
    return at;
  };
  const sumInputByte = allocate(inputBytes);
  const layout: Layout = {
    sumInputByte,
    diffInputByte: sharedInput ? sumInputByte : allocate(inputBytes),
    centreInputByte: centreTap === undefined ? 0 : allocate(inputBytes),
    sumPlusDiffByte: allocate(outputBytes),
    sumMinusDiffByte: withDifference ? allocate(outputBytes) : 0,
  };
  const pages = Math.ceil(nextByte / WASM_PAGE_BYTES);
  const bytes = new Uint8Array([
    ...WASM_HEADER,
    ...section(SECTION_TYPE, vector([[TYPE_FUNC, ...vector([[TYPE_I32]]), ...vector([])]])),
    ...section(SECTION_FUNCTION, vector([[0]])),
    ...section(SECTION_MEMORY, vector([[0x00, ...unsignedLeb128(pages)]])),
    ...section(
      SECTION_EXPORT,
      vector([
        [...name('memory'), EXPORT_MEMORY, 0],
        [...name('fold'), EXPORT_FUNCTION, 0],
      ]),
    ),
    ...section(SECTION_CODE, vector([foldFunctionBody(options, layout)])),
  ]);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
  const memory = instance.exports['memory'];
  const fold = instance.exports['fold'];
  if (!(memory instanceof WebAssembly.Memory) || typeof fold !== 'function') {
    throw new Error('fold kernel: unexpected exports');
  }
  const buffer = memory.buffer;
  const sumInput = new Float32Array(buffer, layout.sumInputByte, inputLength);
  const run = fold as (endByte: number) => void;
  return {
    sumInput,
    diffInput: sharedInput ? sumInput : new Float32Array(buffer, layout.diffInputByte, inputLength),
    centreInput: new Float32Array(buffer, layout.centreInputByte, centreTap === undefined ? 0 : inputLength),
    sumPlusDiff: new Int16Array(buffer, layout.sumPlusDiffByte, paddedOutputs),
    sumMinusDiff: new Int16Array(buffer, layout.sumMinusDiffByte, withDifference ? paddedOutputs : 0),
    run(count: number): void {
      if (!Number.isInteger(count) || count < 0 || count > maxOutputs) {
        throw new RangeError(`fold kernel: count ${count} out of range (0..${maxOutputs})`);
      }
      run(Math.ceil(count / SIMD_LANES) * SIMD_LANES * FLOAT32_BYTES);
    },
  };
}
