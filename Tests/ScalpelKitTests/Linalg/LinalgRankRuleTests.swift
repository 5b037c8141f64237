import Testing
import ScalpelKit

@Suite struct LinalgRankRuleTests {
    /// Energies 16, 9, 4, 1: cumulative 16, 25, 29, 30 of a total 30.
    let values: [Float] = [4, 3, 2, 1]

    @Test func energyPicksTheSmallestSufficientRank() {
        #expect(RankRule.energy(0.5).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 1)
        #expect(RankRule.energy(0.8).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 2)
        #expect(RankRule.energy(0.9).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 3)
        #expect(RankRule.energy(0.99).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 4)
    }

    @Test func maxErrorPicksTheSmallestSufficientRank() {
        // Relative errors: sqrt(14/30) = 0.683, sqrt(5/30) = 0.408, sqrt(1/30) = 0.183, 0.
        #expect(RankRule.maxError(0.7).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 1)
        #expect(RankRule.maxError(0.5).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 2)
        #expect(RankRule.maxError(0.2).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 3)
        #expect(RankRule.maxError(0.1).smallestRank(singularValues: values, frobeniusNormSquared: 30) == 4)
        // The matrix holds energy beyond these values (total 40): the tail never drops below 10/40.
        #expect(RankRule.maxError(0.1).smallestRank(singularValues: values, frobeniusNormSquared: 40) == nil)
        #expect(RankRule.maxError(0.1).rank(singularValues: values, frobeniusNormSquared: 40, maxRank: 64) == 4)
        #expect(RankRule.maxError(0.62).smallestRank(singularValues: values, frobeniusNormSquared: 40) == 2)  // sqrt(15/40) = 0.612
        #expect(RankRule.maxError(0.6).smallestRank(singularValues: values, frobeniusNormSquared: 40) == 3)
    }

    @Test func maxRankCapsEveryRule() {
        #expect(RankRule.energy(0.99).rank(singularValues: values, frobeniusNormSquared: 30, maxRank: 2) == 2)
        #expect(RankRule.maxError(0.1).rank(singularValues: values, frobeniusNormSquared: 30, maxRank: 3) == 3)
        #expect(RankRule.fixed(3).rank(singularValues: values, frobeniusNormSquared: 30, maxRank: 2) == 2)
        #expect(RankRule.fixed(10).rank(singularValues: values, frobeniusNormSquared: 30, maxRank: 64) == 4)
        #expect(RankRule.energy(0.5).rank(singularValues: values, frobeniusNormSquared: 30, maxRank: 64) == 1)
    }

    @Test func zeroMatrixNeedsRankOne() {
        #expect(RankRule.energy(0.9).rank(singularValues: [0, 0, 0], frobeniusNormSquared: 0, maxRank: 8) == 1)
        #expect(RankRule.maxError(0).rank(singularValues: [0, 0, 0], frobeniusNormSquared: 0, maxRank: 8) == 1)
    }

    @Test func invalidRulesThrow() throws {
        for rule in [RankRule.fixed(0), .energy(0), .energy(1.5), .maxError(1), .maxError(-0.1), .maxError(.nan)] {
            #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "invalid rank rule \(rule)")) {
                try rule.validate()
            }
        }
        try RankRule.energy(1).validate()
        try RankRule.maxError(0).validate()
    }
}
