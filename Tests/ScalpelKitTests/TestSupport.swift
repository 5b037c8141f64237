import Foundation
@testable import ScalpelKit

/// A fresh temporary folder for one test, removed by the caller with `cleanup()`.
struct TempDir {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "scalpel-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }

    /// Names of the entries in the folder.
    func entries() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

/// A safetensors file's bytes built by hand: `header` JSON text then `data`.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out = [UInt8]()
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    return out + h + data
}

/// An output tensor of f32 values.
func f32Tensor(_ name: String, _ shape: [Int], _ values: [Float]) -> OutputTensor {
    OutputTensor(name: name, type: .plain(.f32), shape: shape, content: .filling { buf in
        values.withUnsafeBytes { buf.copyMemory(from: $0) }
    })
}

/// Writes bytes to a file.
func writeBytes(_ bytes: [UInt8], to path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

/// A seeded SplitMix64 generator, so every test sees the same data.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// Test shorthands that write through the one write path, `Pipeline.write`, replacing any existing
// output as the tests expect.

extension SafetensorsWriter {
    static func write(_ tensors: [OutputTensor], metadata: Metadata, to path: String, zstdLevel: Int? = nil) throws {
        _ = try Pipeline.write(Plan(destination: try Destination(path: path, zstdLevel: zstdLevel), tensors: tensors, metadata: metadata, inputs: []),
                               options: .init(force: true))
    }
}

extension GGUFWriter {
    static func write(_ tensors: [OutputTensor], metadata: Metadata, alignment: Int = 32, to path: String, zstdLevel: Int? = nil) throws {
        _ = try Pipeline.write(Plan(destination: try Destination(path: path, zstdLevel: zstdLevel), tensors: tensors, metadata: metadata,
                                    ggufAlignment: alignment, inputs: []), options: .init(force: true))
    }
}

extension ShardedSafetensors {
    static func write(_ tensors: [OutputTensor], metadata: Metadata, to folder: String, shardBytes: Int) throws {
        _ = try Pipeline.write(Plan(destination: try Destination(path: folder, shardBytes: shardBytes), tensors: tensors, metadata: metadata, inputs: []))
    }
}

extension PEFTAdapterWriter {
    static func write(tensors: [OutputTensor], config: AdapterConfig, to folder: String) throws {
        _ = try Pipeline.write(try plan(tensors: tensors, config: config, to: folder, inputs: []))
    }
}

extension Plan {
    /// Writes the plan (replacing an existing output) and returns its report's typed details.
    @discardableResult
    func written<T>(as: T.Type = T.self) throws -> T {
        let result = try Pipeline.write(self, options: .init(force: true))
        return report(result).details as! T
    }

    /// Writes the plan, replacing an existing output.
    func write() throws {
        _ = try Pipeline.write(self, options: .init(force: true))
    }
}

extension ExtractLoRA {
    /// Writes an extraction's factors as a PEFT folder or GGUF file (without the CLI's model card).
    static func write(_ result: Result, to path: String, format: OutputFormat) throws {
        let plan = format == .peft
            ? try PEFTAdapterWriter.plan(tensors: result.tensors, config: result.config!, to: path, inputs: [])
            : Plan(destination: try Destination(path: path), tensors: result.tensors, metadata: result.metadata, inputs: [])
        _ = try Pipeline.write(plan, options: .init(force: true))
    }
}

extension Stack {
    /// Plans and writes a stacked adapter folder; returns the summary with the SVD step's losses.
    @discardableResult
    static func write(_ inputs: [WeightedAdapter], options: Options, to folder: String) throws -> Summary {
        try plan(inputs, options: options, to: folder).written()
    }
}
