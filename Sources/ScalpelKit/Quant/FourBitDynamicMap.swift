/// bitsandbytes' signed 8-bit "dynamic" code, `create_dynamic_map(signed=True, max_exponent_bits=7,
/// total_bits=8)`: the `nested_quant_map` of double-quantized 4-bit weights.
///
/// For exponent `i` in 0..<7 the code holds the `2^i` means of consecutive points of
/// `torch.linspace(0.1, 1, 2^i + 1)` (f32), times `10^(i - 6)` (an f32 multiply), with both signs;
/// then 0 and 1; sorted ascending: 256 values from -0.99296875 to 1, code 127 being 0.
///
/// torch's f32 `linspace` computes `start + step * k` (and `end - step * (steps - 1 - k)` for the
/// upper half) with a fused multiply-add on x86-64 (its AVX2/AVX-512 builds), so this does too: the
/// 256 values are then bit-identical to bitsandbytes' table (tested against it).
public enum FourBitDynamicMap {
    /// The 256 ascending code values.
    public static let values: [Float] = make()

    private static func make() -> [Float] {
        var data: [Float] = []
        for i in 0..<7 {
            let points = linspace(0.1, 1, steps: (1 << i) + 1)
            let scale = Float(pow10(i - 6))
            for k in 0..<(points.count - 1) {
                let mean = (points[k] + points[k + 1]) / 2
                data.append(scale * mean)
                data.append(-scale * mean)
            }
        }
        data.append(0)
        data.append(1)
        return data.sorted()
    }

    /// torch's f32 `linspace(start, end, steps)` with fused multiply-adds.
    private static func linspace(_ start: Float, _ end: Float, steps: Int) -> [Float] {
        let step = (end - start) / Float(steps - 1)
        return (0..<steps).map { k in
            k < steps / 2 ? start.addingProduct(step, Float(k)) : end.addingProduct(-step, Float(steps - 1 - k))
        }
    }

    /// `10^e` as Python computes `10 ** e` (an exact power for e >= 0, else the double nearest 1/10^-e).
    private static func pow10(_ e: Int) -> Double {
        e >= 0 ? (0..<e).reduce(1.0) { r, _ in r * 10 } : 1 / pow10(-e)
    }
}
