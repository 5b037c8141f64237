/// bitsandbytes 4-bit blockwise quantization (NF4, FP4), bit-identical to `quantize_4bit` of
/// bitsandbytes 0.50's CPU backend (`backends/default/ops.py`), which it verifies against.
///
/// The algorithm, for a tensor flattened in row-major order:
/// 1. Blocks of `blockSize` consecutive elements; a short last block is its own block.
/// 2. `absmax` = max |x| of the block in f32. A NaN anywhere in a block makes its absmax NaN.
/// 3. Full blocks: `scaled = x * (1 / max(absmax, 1e-38))` (an f32 reciprocal, then a multiply); the
///    stored absmax is NOT clamped, so an all-zero block stores 0. The short last block instead divides,
///    `scaled = x / max(absmax, 1e-38)`, and stores the clamped absmax (1e-38 in f32 when all zero):
///    bitsandbytes treats the remainder separately and so does this.
/// 4. The code is the value of the code table nearest to `scaled` (clamped to [-1, 1]), decided by
///    the midpoints of the sorted table (`FourBitKind.boundaries`); a value exactly on a midpoint takes
///    the LOWER one. A NaN scaled value (a NaN input, or an infinity in its block) takes the highest
///    bucket (NF4 code 15, FP4 code 3), as `torch.bucketize` does.
/// 5. Two codes per byte, the even element in the high nibble.
///
/// Where bitsandbytes' CUDA kernel (`kQuantizeBlockwise`) differs, on inputs that rarely matter:
/// it multiplies by the reciprocal in the last block too and stores absmax 0 for an all-zero block,
/// whose codes are then 0 (it computes 0 * inf = NaN) where the CPU gives the code of 0.0; its max
/// ignores NaN; its FP4 tree uses decimal pivots (0.583333 for 7/12 ...) and sends a negative value on
/// a midpoint toward zero. Both encodings load the same way; they differ only on those inputs.
public enum FourBit {
    /// The block sizes bitsandbytes accepts.
    public static let blockSizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]

    /// The smallest absmax used as a divisor, `1e-38` rounded to f32 (a subnormal).
    static let absmaxFloor = Float(1e-38)

    /// Quantizes `values` (a tensor flattened row-major) to 4-bit codes.
    ///
    /// - Parameters:
    ///   - kind: NF4 or FP4.
    ///   - blockSize: elements per absmax block, one of `blockSizes` (bitsandbytes' default is 64).
    ///   - doubleQuant: also quantize the absmax values (`NestedAbsmax`, bitsandbytes'
    ///     `compress_statistics` / `bnb_4bit_use_double_quant`).
    /// - Returns: the codes and scales; an empty input gives empty ones.
    /// - Throws: `ScalpelError.invalid` for a block size bitsandbytes does not accept.
    /// Runs in parallel over fixed chunks of blocks: the result does not depend on the thread count.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, kind: FourBitKind, blockSize: Int = 64,
                                doubleQuant: Bool = false) throws -> FourBitQuantized {
        guard blockSizes.contains(blockSize) else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason:
                "bitsandbytes 4-bit block size must be one of \(blockSizes.map(String.init).joined(separator: ", ")), not \(blockSize)")
        }
        let n = values.count
        let blocks = (n + blockSize - 1) / blockSize
        var absmax: [Float] = []
        // Every code byte and absmax is written by the kernel, so neither array is zeroed first.
        let codes = [UInt8](unsafeUninitializedCapacity: (n + 1) / 2) { c, codeCount in
            absmax = [Float](unsafeUninitializedCapacity: blocks) { a, absmaxCount in
                if n > 0 {
                    let kernel = FourBitKernel(kind: kind)
                    let io = UncheckedBox((values.baseAddress!, c.baseAddress!, a.baseAddress!))
                    parallelChunks(count: blocks, chunk: max(1, 32768 / blockSize)) { range in
                        let (src, codes, absmax) = io.value
                        for b in range {
                            let start = b * blockSize
                            let len = min(blockSize, n - start)
                            absmax[b] = kernel.quantizeBlock(src + start, count: len, isLast: b == blocks - 1, into: codes + start / 2)
                        }
                    }
                }
                absmaxCount = blocks
            }
            codeCount = (n + 1) / 2
        }
        let nested = doubleQuant ? NestedAbsmax.quantize(absmax) : nil
        return FourBitQuantized(kind: kind, blockSize: blockSize, count: n, codes: codes, absmax: absmax, nested: nested)
    }

    /// Dequantizes `q` into `out` (`q.count` values): `quantMap[code] * scale` of the element's block
    /// in f32, with the scales of `q.blockScales` (bitsandbytes' `dequantize_4bit`).
    public static func dequantize(_ q: FourBitQuantized, into out: UnsafeMutableBufferPointer<Float>) {
        q.codes.withUnsafeBufferPointer { c in
            q.blockScales.withUnsafeBufferPointer { s in
                dequantize(codes: c, scales: s, kind: q.kind, blockSize: q.blockSize, into: out)
            }
        }
    }

    /// Dequantizes packed codes with explicit per-block scales, as a loader does: `out.count` elements,
    /// element `i` = `quantMap[nibble i] * scales[i / blockSize]` in f32.
    /// - Precondition: `codes` holds at least `(out.count + 1) / 2` bytes and `scales` one value per block.
    public static func dequantize(codes: UnsafeBufferPointer<UInt8>, scales: UnsafeBufferPointer<Float>,
                                  kind: FourBitKind, blockSize: Int, into out: UnsafeMutableBufferPointer<Float>) {
        let n = out.count
        guard n > 0 else { return }
        let blocks = (n + blockSize - 1) / blockSize
        precondition(codes.count >= (n + 1) / 2 && scales.count >= blocks, "4-bit codes or scales too short")
        let map = kind.quantMap
        let pairs = (0..<256).map { SIMD2<Float>(map[$0 >> 4], map[$0 & 15]) }
        let io = UncheckedBox((codes.baseAddress!, scales.baseAddress!, out.baseAddress!))
        pairs.withUnsafeBufferPointer { pairTable in
            let table = UncheckedBox(pairTable.baseAddress!)
            parallelChunks(count: blocks, chunk: max(1, 32768 / blockSize)) { range in
                let (c, s, o) = io.value
                for b in range {
                    let start = b * blockSize
                    let end = min(n, start + blockSize)
                    let scale = s[b]
                    var i = start
                    while i + 1 < end {
                        let v = table.value[Int(c[i >> 1])] * scale
                        o[i] = v.x
                        o[i + 1] = v.y
                        i += 2
                    }
                    if i < end { o[i] = map[Int(c[i >> 1] >> 4)] * scale }
                }
            }
        }
    }
}
