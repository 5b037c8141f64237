/// The sparsification steps of the stacking methods: magnitude pruning and DARE's random drop.
enum StackMasks {
    /// Keeps the `k` entries of largest |value| and zeroes the rest (PEFT's `magnitude_based_pruning`,
    /// k = floor(density * n)). Among equal magnitudes the lower index is kept, so the result is the one
    /// of a stable descending sort. NaN entries are never kept.
    static func keepLargest(_ v: UnsafeMutableBufferPointer<Float>, count k: Int) {
        let n = v.count
        if k >= n { return }
        guard k > 0 else {
            v.update(repeating: 0)
            return
        }
        var magnitudes = v.map { $0.isNaN ? -1 : abs($0) }
        let threshold = kthLargest(&magnitudes, k)
        var above = 0
        for x in v where abs(x) > threshold { above += 1 }
        var ties = k - above
        for i in 0..<n {
            let a = abs(v[i])
            if a > threshold { continue }
            if a == threshold && ties > 0 {
                ties -= 1
                continue
            }
            v[i] = 0
        }
    }

    /// The k-th largest value (k in 1...count), reordering `values` (quickselect, Hoare partition).
    static func kthLargest(_ values: inout [Float], _ k: Int) -> Float {
        let target = values.count - k
        return values.withUnsafeMutableBufferPointer { a -> Float in
            var lo = 0, hi = a.count - 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                let pivot = median(a[lo], a[mid], a[hi])
                var i = lo, j = hi
                while i <= j {
                    while a[i] < pivot { i += 1 }
                    while a[j] > pivot { j -= 1 }
                    if i <= j {
                        a.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if target <= j { hi = j } else if target >= i { lo = i } else { break }
            }
            return a[target]
        }
    }

    private static func median(_ x: Float, _ y: Float, _ z: Float) -> Float {
        max(min(x, y), min(max(x, y), z))
    }

    /// DARE: keeps each entry with probability `density` and divides the kept ones by `density` (as PEFT's
    /// `random_pruning` with rescale; not mergekit's L1-norm rescaling). The mask of entry e (row-major
    /// index into `B @ A`) is `DAREMask.keeps(e)`, independent of threads and chunking.
    static func dropAndRescale(_ v: UnsafeMutableBufferPointer<Float>, mask: DAREMask) {
        let scale = 1 / Float(mask.density)
        let box = UncheckedBox(v.baseAddress!)
        parallelChunks(count: v.count, chunk: 1 << 16) { r in
            for e in r { box.value[e] = mask.keeps(e) ? box.value[e] * scale : 0 }
        }
    }
}

/// The seeded Bernoulli mask DARE applies to one input's update of one module.
///
/// Counter-based, so every entry's draw is a pure function of (seed, adapter index, module path, entry):
/// `stream = mix(seed &+ mix(fnv1a64(path) &+ mix(adapterIndex)))`,
/// `u(e) = (mix(stream &+ e &* 0x9E3779B97F4A7C15) >> 11) * 2^-53`, kept when `u(e) < density`,
/// where `mix` is SplitMix64's finalizer and `&` arithmetic wraps modulo 2^64.
struct DAREMask: Sendable {
    let density: Double
    let stream: UInt64

    init(seed: UInt64, adapterIndex: Int, path: String, density: Double) {
        self.density = density
        stream = DAREMask.mix(seed &+ DAREMask.mix(DAREMask.fnv1a64(path) &+ DAREMask.mix(UInt64(adapterIndex))))
    }

    /// True when entry `e` is kept.
    func keeps(_ e: Int) -> Bool {
        let bits = DAREMask.mix(stream &+ UInt64(e) &* 0x9E37_79B9_7F4A_7C15) >> 11
        return Double(bits) * 0x1p-53 < density
    }

    /// SplitMix64's output function.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 64-bit FNV-1a of the UTF-8 bytes.
    static func fnv1a64(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in s.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
