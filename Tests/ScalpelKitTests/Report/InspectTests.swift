import Foundation
import Testing
@testable import ScalpelKit

@Suite struct InspectTests {
    @Test func statsMatchDirectComputation() throws {
        var values = (0..<100_003).map { Float(sin(Double($0)) * 3) }
        values[5] = .nan
        values[6] = .infinity
        values[7] = 0
        let dir = TempDir()
        defer { dir.cleanup() }
        try SafetensorsWriter.write([f32Tensor("w", [values.count], values)], metadata: Metadata(), to: dir.file("s.safetensors"))
        let c = try CheckpointReader.open(dir.file("s.safetensors"))
        let s = try TensorStats.compute(try c.view("w"))
        let finite = values.filter(\.isFinite).map(Double.init)
        let mean = finite.reduce(0, +) / Double(finite.count)
        let std = (finite.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(finite.count)).squareRoot()
        #expect(s.nanCount == 1 && s.infCount == 1)
        #expect(s.min == finite.min()! && s.max == finite.max()!)
        #expect(abs(s.mean - mean) < 1e-9)
        #expect(abs(s.std - std) / std < 1e-6)
        #expect(abs(s.meanAbs - finite.map(abs).reduce(0, +) / Double(finite.count)) < 1e-6)
        #expect(s.zeroFraction == Double(values.filter { $0 == 0 }.count) / Double(values.count))
    }

    @Test func groupsByLayerAndModule() {
        let t = { (n: String) in TensorInfo(name: n, type: .plain(.f32), shape: [2, 2], byteCount: 16) }
        #expect(Grouping.layer.key(for: t("model.layers.12.self_attn.q_proj.weight")) == "layer 12")
        #expect(Grouping.layer.key(for: t("blk.3.attn_q.weight")) == "layer 3")
        #expect(Grouping.layer.key(for: t("encoder.layer.0.output.dense.bias")) == "layer 0")
        #expect(Grouping.layer.key(for: t("model.norm.weight")) == "(other)")
        #expect(Grouping.module.key(for: t("model.layers.0.self_attn.q_proj.weight")) == "q_proj")
        #expect(Grouping.module.key(for: t("base_model.model.layers.0.v_proj.lora_A.weight")) == "v_proj")
        #expect(Grouping.module.key(for: t("blk.0.attn_norm.bias")) == "attn_norm")
    }

    /// The real model from `make model` (skipped when it has not been fetched).
    @Test func realModelHeader() throws {
        let path = ProcessInfo.processInfo.environment["SCALPEL_MODEL"]
            ?? repositoryPath("work/models/all-MiniLM-L6-v2/model.safetensors")
        guard FileManager.default.fileExists(atPath: path) else { return }
        let report = try InspectReport(try CheckpointReader.open(path), grouping: .layer)
        #expect(report.totals.tensors == 104)
        #expect(report.totals.parameters == 22_713_728)
        #expect(report.groups.first?.0 == "layer 0")
        #expect(report.json["by_dtype"]?["F32"]?["tensors"]?.intValue == 103)
    }

    @Test func byteSizes() {
        #expect(parseByteSize("2GB") == 2_000_000_000)
        #expect(parseByteSize("512MiB") == 512 << 20)
        #expect(parseByteSize("1.5 kb") == 1500)
        #expect(parseByteSize("100") == 100)
        #expect(parseByteSize("-1GB") == nil)
        #expect(parseByteSize("lots") == nil)
    }
}
