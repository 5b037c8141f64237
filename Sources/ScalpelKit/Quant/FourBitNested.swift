/// Double-quantized 4-bit absmax (bitsandbytes' `compress_statistics`): the f32 absmax of each 4-bit
/// block, centered on their mean and quantized blockwise to the 8-bit dynamic code.
///
/// - `offset` = mean of the absmax values: accumulated in f64 and rounded once to f32. (torch computes
///   the mean with an f32 cascade sum whose order depends on its thread count and vector width; the two
///   agree to the last bit about half the time and otherwise differ by one f32 ulp.)
/// - Each block of 256 centered values `absmax - offset` (f32 subtraction; a short last block is its
///   own) stores its f32 absmax `m` in `absmax`, and each value the 8-bit code nearest to
///   `(value) * (1 / m)` in `FourBitDynamicMap.values`, chosen exactly as bitsandbytes' CUDA
///   `dQuantize<0>`: a 7-step binary search over the 256 codes, then a comparison with the midpoint
///   to the neighbour (`(a + b) * 0.5f`). A block whose values are all equal (m = 0) gets codes 0.
/// - Dequantized: `code * m + offset`, two f32 operations (bitsandbytes' `dequantize_blockwise`,
///   then `absmax += offset`).
///
/// bitsandbytes 0.50 on CPU picks the codes through a 65536-entry lookup table over [-1, 1] instead
/// of the exact search, which differs for values within about 3e-5 of a midpoint; the CUDA rule used
/// here gives the nearer code in every such case.
public struct NestedAbsmax: Sendable, Equatable {
    /// Values per nested block (`nested_blocksize`, fixed at 256 by bitsandbytes' `quantize_4bit`).
    public static let blockSize = 256

    /// One 8-bit code per 4-bit block: the U8 tensor `weight.absmax`.
    public var codes: [UInt8]
    /// The f32 absmax of each nested block: the tensor `weight.nested_absmax`.
    public var absmax: [Float]
    /// The mean subtracted before quantization: `nested_offset` in the quant state.
    public var offset: Float

    public init(codes: [UInt8], absmax: [Float], offset: Float) {
        self.codes = codes
        self.absmax = absmax
        self.offset = offset
    }

    /// The table the codes index: the `weight.nested_quant_map` tensor.
    public static var quantMap: [Float] { FourBitDynamicMap.values }

    /// Double-quantizes 4-bit block absmax values, computing the offset (their mean; 0 when empty).
    public static func quantize(_ absmax: [Float]) -> NestedAbsmax {
        quantize(absmax, offset: mean(absmax))
    }

    /// Double-quantizes 4-bit block absmax values around a given `offset`.
    public static func quantize(_ absmax: [Float], offset: Float) -> NestedAbsmax {
        let map = FourBitDynamicMap.values
        var codes = [UInt8](repeating: 0, count: absmax.count)
        var scales: [Float] = []
        var start = 0
        while start < absmax.count {
            let end = min(absmax.count, start + blockSize)
            var m: Float = 0
            for i in start..<end { m = max(m, abs(absmax[i] - offset)) }
            scales.append(m)
            if m != 0 {
                let inverse = 1 / m
                for i in start..<end { codes[i] = nearestDynamicCode((absmax[i] - offset) * inverse, map) }
            }
            start = end
        }
        return NestedAbsmax(codes: codes, absmax: scales, offset: offset)
    }

    /// The f32 absmax values a loader reconstructs: `map[code] * absmax[i / 256] + offset`.
    public func dequantize() -> [Float] {
        let map = FourBitDynamicMap.values
        return codes.indices.map { map[Int(codes[$0])] * absmax[$0 / Self.blockSize] + offset }
    }

    /// The mean of `values`, summed in f64 and rounded to f32 (0 for no values).
    static func mean(_ values: [Float]) -> Float {
        guard !values.isEmpty else { return 0 }
        var sum = 0.0
        for v in values { sum += Double(v) }
        return Float(sum / Double(values.count))
    }

    /// bitsandbytes' CUDA `dQuantize<0>(code, 0, x)`, transcribed: the code index for a normalized `x`.
    static func nearestDynamicCode(_ x: Float, _ code: [Float]) -> UInt8 {
        var pivot = 127, upperPivot = 255, lowerPivot = 0
        var lower: Float = -1, upper: Float = 1
        var val = code[pivot]
        var step = 64
        while step > 0 {
            if x > val {
                lowerPivot = pivot
                lower = val
                pivot += step
            } else {
                upperPivot = pivot
                upper = val
                pivot -= step
            }
            val = code[pivot]
            step >>= 1
        }
        if upperPivot == 255 { upper = code[upperPivot] }
        if lowerPivot == 0 { lower = code[lowerPivot] }
        if x > val {
            return UInt8(x > (upper + val) * 0.5 ? upperPivot : pivot)
        }
        return UInt8(x < (lower + val) * 0.5 ? lowerPivot : pivot)
    }
}
