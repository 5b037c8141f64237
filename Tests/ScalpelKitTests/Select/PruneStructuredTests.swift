import Testing
@testable import ScalpelKit

@Suite struct PruneStructuredTests {
    @Test func rowScopeMatchesTheReferenceInEveryRow() {
        for (rows, length) in [(3, 7), (64, 1000), (5, 70_000)] {
            for values in [PruneTestData.random(rows * length, seed: 21), PruneTestData.ties(rows * length, seed: 22)] {
                let k = Prune.Amount.sparsity(0.55).count(of: length)
                let (out, counts) = PruneTestData.run(values) { RowMask.apply($0, rowLength: length, k: k, into: $1) }
                #expect(counts.zeroed == k * rows)
                for r in 0..<rows {
                    let expected = PruneTestData.referenceRemoved(values[(r * length)..<((r + 1) * length)], k)
                    for j in 0..<length {
                        let i = r * length + j
                        #expect(out[i].bitPattern == (expected.contains(j) ? 0 : values[i].bitPattern))
                    }
                }
            }
        }
    }

    @Test func twoFourKeepsTheTwoLargestOfEveryGroupTiesByPosition() {
        let values: [Float] = [0.1, -0.4, 0.3, 0.2,   1, 1, 1, 1,   0, 0, 5, 0,   -3, 3, -3, 2]
        let (out, counts) = PruneTestData.run(values) { PatternMask.apply($0, keep: 2, group: 4, into: $1) }
        let expected: [Float] = [0, -0.4, 0.3, 0,   0, 0, 1, 1,   0, 0, 5, 0,   0, 3, -3, 0]
        #expect(out.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(counts.zeroed == 8)
        #expect(counts.zerosAfter == 9)  // one kept zero in the third group
    }

    @Test func nOfMGroupsOnRandomDataHaveExactlyMMinusNZerosAndKeepTheLargest() {
        for (keep, group) in [(2, 4), (4, 8), (1, 3)] {
            for values in [PruneTestData.random(group * 5000, seed: 31), PruneTestData.ties(group * 5000, seed: 32)] {
                let (out, counts) = PruneTestData.run(values) { PatternMask.apply($0, keep: keep, group: group, into: $1) }
                #expect(counts.zeroed == (group - keep) * 5000)
                for g in 0..<5000 {
                    let lo = g * group
                    let expected = PruneTestData.referenceRemoved(values[lo..<(lo + group)], group - keep)
                    for j in 0..<group {
                        #expect(out[lo + j].bitPattern == (expected.contains(j) ? 0 : values[lo + j].bitPattern))
                    }
                }
            }
        }
    }

    @Test func channelScopeZeroesTheRowsWithTheSmallestNorm() {
        // Row norms: row 0 = 5, row 1 = 1, row 2 = 5 (tie with row 0), row 3 = 13, row 4 = NaN.
        let values: [Float] = [3, 4, 0,   1, 0, 0,   0, -4, 3,   5, 12, 0,   .nan, 0, 0]
        for (k, removed) in [(0, []), (1, [1]), (2, [1, 0]), (3, [1, 0, 2]), (5, [0, 1, 2, 3, 4])] as [(Int, [Int])] {
            let (out, counts) = PruneTestData.run(values) { ChannelMask.apply($0, rowLength: 3, k: k, into: $1) }
            #expect(counts.zeroed == 3 * k)
            for r in 0..<5 {
                for j in 0..<3 {
                    let i = r * 3 + j
                    #expect(out[i].bitPattern == (removed.contains(r) ? 0 : values[i].bitPattern))
                }
            }
        }
        let (_, counts) = PruneTestData.run(values) { ChannelMask.apply($0, rowLength: 3, k: 2, into: $1) }
        #expect(counts.sumSquares == 25 + 1 + 25 + 169)
        #expect(counts.removedSumSquares == 26)
        #expect(counts.zerosAfter == 6 + 1 + 1 + 2)
    }
}
