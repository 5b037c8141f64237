/// How much of a weight difference low ranks capture: the singular values of B - A by the randomized
/// SVD that extract-lora uses.
public struct RankProfile: Sendable {
    /// Profile rank -> fraction of ||B - A||_F² captured by the best approximation of that rank (ranks
    /// beyond min(m, n) capture everything the full SVD does).
    public var energyAtRank: [(rank: Int, fraction: Double)]
    /// The smallest rank whose approximation keeps at least the requested energy (0 when B = A).
    public var rankForEnergy: Int

    /// The fraction at a profile rank.
    public func fraction(at rank: Int) -> Double? { energyAtRank.first { $0.rank == rank }?.fraction }

    /// Profiles the difference `b - a` of two row-major `rows x cols` matrices.
    ///
    /// One randomized SVD of rank max(ranks) (capped at min(rows, cols); exact when the sketch would
    /// cover it) gives every profile fraction; `rankForEnergy` comes from its singular values when the
    /// target is met within them, else from the error-targeted search of `RandomizedSVD` starting
    /// above the profile rank. Same seed, same result, whatever the thread count.
    static func measure(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                        options: Diff.Options) throws -> RankProfile {
        var values = [Float](repeating: 0, count: rows * cols)
        for i in 0..<values.count { values[i] = b[i] - a[i] }
        let d = Matrix(rows: rows, cols: cols, values: values)
        let total = Linalg.sumOfSquares(d)
        let ranks = options.ranks.sorted()
        guard total > 0 else {
            return RankProfile(energyAtRank: ranks.map { ($0, 1.0) }, rankForEnergy: 0)
        }
        let full = min(rows, cols)
        let top = min(ranks.last ?? 1, full)
        let svd = try RandomizedSVD.decompose(d, rank: top, options: options.svd)
        let s = svd.singularValues
        var cumulative = [0.0]
        for v in s { cumulative.append(cumulative.last! + Double(v) * Double(v)) }
        let energyAtRank = ranks.map { r in (r, min(1, cumulative[min(r, s.count)] / svd.frobeniusNormSquared)) }
        let rule = RankRule.energy(options.energy)
        let k: Int
        if let found = rule.smallestRank(singularValues: s, frobeniusNormSquared: svd.frobeniusNormSquared) {
            k = found
        } else if s.count >= full {
            k = full
        } else {
            var o = options.svd
            o.initialRank = min(full, 2 * top)
            k = try RandomizedSVD.decompose(d, rule: rule, maxRank: full, options: o).rank
        }
        return RankProfile(energyAtRank: energyAtRank, rankForEnergy: k)
    }
}
