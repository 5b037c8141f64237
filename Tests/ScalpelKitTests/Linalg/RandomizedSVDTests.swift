import Foundation
import Testing
import ScalpelKit

@Suite struct RandomizedSVDTests {
    static let rows = 500, cols = 400

    /// Decaying spectra of length 400 (full rank): exponential, power laws (the slow one is typical of
    /// fine-tuning deltas), and rank 30 plus a flat noise floor.
    static let spectra: [(String, [Float])] = [
        ("exponential 0.95^i", (0..<400).map { Float(pow(0.95, Double($0))) }),
        ("power law (i+1)^-1", (0..<400).map { Float(1 / Double($0 + 1)) }),
        ("power law (i+1)^-0.5", (0..<400).map { Float(1 / Double($0 + 1).squareRoot()) }),
        ("rank 30 plus noise", (0..<400).map { $0 < 30 ? Float(10 * pow(0.9, Double($0))) : 0.05 }),
    ]

    @Test(arguments: spectra.indices)
    func rankKErrorIsWithinOnePercentOfOptimal(index: Int) throws {
        let (name, spectrum) = Self.spectra[index]
        let a = try LinalgTestMatrix.withSpectrum(spectrum, rows: Self.rows, cols: Self.cols, seed: 11)
        for k in [10, 40] {
            let svd = try RandomizedSVD.decompose(a, rank: k)
            #expect(svd.rank == k && svd.u.rows == Self.rows && svd.vt.cols == Self.cols)
            let optimal = LinalgTestMatrix.optimalError(spectrum, rank: k)
            let actual = LinalgTestMatrix.relativeDifference(a, try LinalgTestMatrix.reconstruct(svd))
            #expect(actual <= optimal * 1.01, "\(name) rank \(k): error \(actual), optimal \(optimal)")
            #expect(abs(svd.relativeError - actual) < 1e-4, "\(name) rank \(k): reported \(svd.relativeError), actual \(actual)")
            #expect(try LinalgTestMatrix.orthonormalityDefect(columnsOf: svd.u) < 1e-5)
            #expect(try LinalgTestMatrix.orthonormalityDefect(rowsOf: svd.vt) < 1e-5)
        }
    }

    @Test func leadingSingularValuesAreRecovered() throws {
        let spectrum = Self.spectra[0].1
        let a = try LinalgTestMatrix.withSpectrum(spectrum, rows: Self.rows, cols: Self.cols, seed: 12)
        let svd = try RandomizedSVD.decompose(a, rank: 20)
        for i in 0..<20 {
            // The leading half is accurate to 1e-3 (relative), the trailing values (least captured) to 5e-3.
            let tolerance: Float = i < 10 ? 1e-3 : 5e-3
            #expect(abs(svd.singularValues[i] - spectrum[i]) <= tolerance * spectrum[i], "s[\(i)] = \(svd.singularValues[i]), expected \(spectrum[i])")
        }
        // Without power iterations the estimates are visibly worse but still below the true values.
        let rough = try RandomizedSVD.decompose(a, rank: 20, options: RandomizedSVDOptions(powerIterations: 0))
        #expect(zip(rough.singularValues, spectrum).allSatisfy { $0 <= $1 * 1.0001 })
        #expect(rough.relativeError > svd.relativeError)
    }

    @Test func sameSeedGivesIdenticalBytesWhateverTheThreadCount() throws {
        let a = try LinalgTestMatrix.withSpectrum(Self.spectra[1].1, rows: 1100, cols: 600, seed: 13)
        let reference = try RandomizedSVD.decompose(a, rank: 24, options: RandomizedSVDOptions(seed: 42, threads: 1))
        for threads in [1, 2, 3] {
            let again = try RandomizedSVD.decompose(a, rank: 24, options: RandomizedSVDOptions(seed: 42, threads: threads))
            #expect(again == reference, "threads \(threads)")
        }
        let other = try RandomizedSVD.decompose(a, rank: 24, options: RandomizedSVDOptions(seed: 43))
        #expect(other.u != reference.u)
        #expect(abs(other.relativeError - reference.relativeError) < 1e-3)
    }

    @Test func seededGaussianIsReproducibleAndStandard() {
        let g = Matrix.standardNormal(rows: 200, cols: 101, seed: 7)
        #expect(g == Matrix.standardNormal(rows: 200, cols: 101, seed: 7))
        #expect(g != Matrix.standardNormal(rows: 200, cols: 101, seed: 8))
        let n = Double(g.values.count)
        let mean = g.values.reduce(0.0) { $0 + Double($1) } / n
        let variance = g.values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        #expect(abs(mean) < 0.02 && abs(variance - 1) < 0.03, "mean \(mean), variance \(variance)")
        // xoshiro256** from splitmix64(0): the published first output for this seeding.
        var generator = Xoshiro256StarStar(seed: 0)
        #expect(generator.next() == 0x99EC_5F36_CB75_F2B4)
    }

    @Test func sketchAsWideAsTheMatrixFallsBackToExact() throws {
        let a = try LinalgTestMatrix.withSpectrum(Self.spectra[0].1.prefix(60).map { $0 }, rows: 90, cols: 60, seed: 14)
        // k + p = 52 + 8 >= min(m, n) = 60.
        #expect(try RandomizedSVD.decompose(a, rank: 52) == Linalg.exactSVD(a).truncated(to: 52))
        #expect(try RandomizedSVD.decompose(a, rank: 500).rank == 60)
    }

    @Test func errorTargetGrowsTheSketchToTheExpectedRank() throws {
        // 37 values in [1, 2], then a floor of 1e-3: any target between ~0.01 and 0.1 needs exactly 37.
        let spectrum = (0..<300).map { $0 < 37 ? Float(2 - Double($0) / 37) : 1e-3 }
        let a = try LinalgTestMatrix.withSpectrum(spectrum, rows: 400, cols: 300, seed: 15)
        let byError = try RandomizedSVD.decompose(a, rule: .maxError(0.05), maxRank: 128)
        #expect(byError.rank == 37)
        #expect(byError.relativeError <= 0.05)
        let byEnergy = try RandomizedSVD.decompose(a, rule: .energy(0.999), maxRank: 128)
        #expect(byEnergy.rank == 37)
        // The cap wins when the target is out of reach.
        let capped = try RandomizedSVD.decompose(a, rule: .maxError(0.05), maxRank: 20)
        #expect(capped.rank == 20 && capped.relativeError > 0.05)
        #expect(try RandomizedSVD.decompose(a, rule: .fixed(12), maxRank: 128).rank == 12)
    }

    @Test(arguments: [0.3, 0.1, 0.03])
    func errorTargetOnADecayingSpectrumMatchesTheExactChoice(target: Double) throws {
        let spectrum = Self.spectra[0].1
        let a = try LinalgTestMatrix.withSpectrum(spectrum, rows: Self.rows, cols: Self.cols, seed: 16)
        let exact = try Linalg.exactSVD(a).truncated(rule: .maxError(target), maxRank: 256)
        let randomized = try RandomizedSVD.decompose(a, rule: .maxError(target), maxRank: 256)
        #expect(randomized.rank >= exact.rank && randomized.rank <= exact.rank + 1, "exact \(exact.rank), randomized \(randomized.rank)")
        let actual = LinalgTestMatrix.relativeDifference(a, try LinalgTestMatrix.reconstruct(randomized))
        #expect(actual <= target, "error \(actual) above target \(target)")
    }

    @Test func invalidRequestsThrow() throws {
        let a = Matrix.standardNormal(rows: 30, cols: 20, seed: 1)
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "invalid rank rule fixed(0)")) {
            try RandomizedSVD.decompose(a, rank: 0)
        }
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "maximum rank 0 is below 1")) {
            try RandomizedSVD.decompose(a, rule: .energy(0.9), maxRank: 0)
        }
        #expect(throws: ScalpelError.self) {
            try RandomizedSVD.decompose(a, rank: 4, options: RandomizedSVDOptions(threads: 0))
        }
        var broken = a
        broken[3, 4] = .infinity
        #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "SVD input holds NaN or infinity")) {
            try RandomizedSVD.decompose(broken, rank: 4)
        }
    }

    @Test(arguments: [LoRAFactorSplit.intoB, .balanced])
    func loraFactorsReproduceTheTruncation(split: LoRAFactorSplit) throws {
        let a = try LinalgTestMatrix.withSpectrum(Self.spectra[3].1, rows: Self.rows, cols: Self.cols, seed: 17)
        let svd = try RandomizedSVD.decompose(a, rank: 30)
        let factors = svd.loraFactors(split: split)
        #expect(factors.rank == 30 && factors.b.rows == Self.rows && factors.b.cols == 30 && factors.a.cols == Self.cols)
        let usv = try LinalgTestMatrix.reconstruct(svd)
        #expect(LinalgTestMatrix.relativeDifference(usv, try Linalg.multiply(factors.b, factors.a)) < 1e-6)
        for j in 0..<30 {
            let s = svd.singularValues[j]
            let bNorm = (0..<Self.rows).reduce(Float(0)) { $0 + factors.b[$1, j] * factors.b[$1, j] }.squareRoot()
            let aNorm = (0..<Self.cols).reduce(Float(0)) { $0 + factors.a[j, $1] * factors.a[j, $1] }.squareRoot()
            switch split {
            case .intoB:
                #expect(abs(bNorm - s) < 1e-5 * s && abs(aNorm - 1) < 1e-5)
                #expect(factors.a == svd.vt)
                #expect(factors.b[5, j] == svd.u[5, j] * s)
            case .balanced:
                #expect(abs(bNorm - s.squareRoot()) < 1e-5 && abs(aNorm - s.squareRoot()) < 1e-5)
            }
        }
    }
}
