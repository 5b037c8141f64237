/// Exact selection of the k-th smallest of a small array of unsigned keys, in linear time.
///
/// A most-significant-digit radix selection: each pass counts the current digit of the remaining
/// candidates, keeps only those in the digit bucket that holds the wanted rank, and moves on to the
/// next digit. The first digit is 11 bits wide (for f32 magnitude keys: the exponent and two mantissa
/// bits, which already leaves few candidates for weight-like data), the next ones 8 bits. At most five
/// passes for 32-bit keys, each over fewer candidates than the one before; no comparisons of keys, so
/// no bad inputs (all-equal keys, sorted keys) and no recursion.
public enum RadixSelect {
    /// Width of the first digit.
    static let firstDigit = 11

    /// The key of 0-based rank `rank` among `keys` (the `rank + 1`-th smallest), and how many keys are
    /// strictly smaller than it.
    ///
    /// `keys` is used as scratch: its order is destroyed.
    /// - Precondition: `0 <= rank < keys.count`.
    public static func kth<K: FixedWidthInteger & UnsignedInteger>(_ keys: UnsafeMutableBufferPointer<K>, rank: Int) -> (key: K, below: Int) {
        precondition(rank >= 0 && rank < keys.count, "rank \(rank) out of 0..<\(keys.count)")
        var remaining = keys.count
        var rank = rank
        var below = 0
        var bits = firstDigit
        var shift = K.bitWidth - bits
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 1 << firstDigit) { counts in
            while true {
                if remaining == 1 { return (keys[0], below) }
                let mask = (1 << bits) - 1
                UnsafeMutableBufferPointer(rebasing: counts[0...mask]).initialize(repeating: 0)
                for i in 0..<remaining { counts[Int(truncatingIfNeeded: keys[i] >> shift) & mask] += 1 }
                var digit = 0
                var before = 0
                while before + counts[digit] <= rank { before += counts[digit]; digit += 1 }
                below += before
                rank -= before
                if shift == 0 { return (keys[0] & ~K(mask) | K(digit), below) }
                if counts[digit] != remaining {
                    var j = 0
                    for i in 0..<remaining {
                        let k = keys[i]
                        keys[j] = k
                        j &+= Int(truncatingIfNeeded: k >> shift) & mask == digit ? 1 : 0
                    }
                    remaining = j
                }
                bits = min(8, shift)
                shift -= bits
            }
        }
    }
}
