import ArgumentParser
import ScalpelKit

/// Library enums used as arguments directly, matched case-insensitively (`--type Q4_0` is `q4_0`).
protocol CaseInsensitiveArgument: ExpressibleByArgument, CaseIterable, RawRepresentable where RawValue == String {}

extension CaseInsensitiveArgument {
    public init?(argument: String) {
        guard let match = Self.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() }) else { return nil }
        self = match
    }

    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension QuantType: ExpressibleByArgument, CaseInsensitiveArgument {}
extension Quantize.Int8Format: ExpressibleByArgument, CaseInsensitiveArgument {}
extension Stack.Method: ExpressibleByArgument, CaseInsensitiveArgument {}
extension Stack.MajoritySign: ExpressibleByArgument, CaseInsensitiveArgument {}
extension ExtractLoRA.OutputFormat: ExpressibleByArgument, CaseInsensitiveArgument {}
extension Grouping: ExpressibleByArgument, CaseInsensitiveArgument {}

/// `--dtype` takes the float dtypes a command can write: f32, f16 or bf16, in any case.
extension DType: ExpressibleByArgument {
    public init?(argument: String) {
        guard let d = DType(rawValue: argument.uppercased()), [.f32, .f16, .bf16].contains(d) else { return nil }
        self = d
    }

    public static var allValueStrings: [String] { ["f32", "f16", "bf16"] }
}
