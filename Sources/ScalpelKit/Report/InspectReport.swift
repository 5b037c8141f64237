/// What `scalpel inspect` reports about a checkpoint.
public struct InspectReport: Sendable {
    public var path: String
    public var format: CheckpointFormat
    public var compressed: Bool
    public var totals = TensorTotals()
    public var fileBytes: Int
    public var byDType: [(String, TensorTotals)]
    public var grouping: Grouping
    public var groups: [(String, TensorTotals)]
    public var metadata: Metadata
    /// Tensors listed (all, or those matching the filter), with statistics when computed.
    public var tensors: [(TensorInfo, TensorStats?)]
    public var adapter: AdapterConfig?
    /// LoRA ranks seen in the adapter's `lora_A` tensors, by rank, with their counts.
    public var adapterRanks: [(Int, Int)] = []
    /// The adapter's family, modules, ranks and parameters (PEFT folders of every type, kohya files).
    public var adapterSummary: AdapterSummary?
    /// Weights stored in a quantized safetensors layout (bitsandbytes, compressed-tensors), by storage
    /// ("NF4", "INT8"...): their count, logical parameters and bytes of all their parts.
    public var quantizedWeights: [(String, TensorTotals)] = []
    /// Parameters counting each quantized weight once by its logical shape (equal to
    /// `totals.parameters` when nothing is stored in a multi-tensor layout).
    public var logicalParameters: Int

    /// Builds the report from the header (and, with `stats`, from the data of the listed tensors,
    /// computed in parallel within each tensor).
    public init(_ ckpt: Checkpoint, grouping: Grouping = .dtype, filter: String? = nil, stats: Bool = false) throws {
        path = ckpt.path
        format = ckpt.format
        compressed = ckpt.compressed
        fileBytes = ckpt.fileBytes
        for t in ckpt.tensors { totals.add(t) }
        byDType = TensorTotals.grouped(ckpt.tensors) { $0.type.description }.sorted { ($1.1.bytes, $0.0) < ($0.1.bytes, $1.0) }
        self.grouping = grouping
        groups = TensorTotals.grouped(ckpt.tensors, by: grouping.key(for:))
        if grouping == .module {
            groups.sort { ($1.1.bytes, $0.0) < ($0.1.bytes, $1.0) }
        } else if grouping == .layer {
            let index = { (key: String) in Int(key.dropFirst("layer ".count)) ?? Int.max }
            groups.sort { (index($0.0), $0.0) < (index($1.0), $1.0) }
        }
        logicalParameters = totals.parameters
        // Quantized layouts need a few bytes of data (the bitsandbytes quant state): only when mapped.
        if !ckpt.compressed || stats, let logical = try? LogicalTensors.resolve(ckpt) {
            let multi = logical.filter { $0.fileIndex == nil }
            quantizedWeights = TensorTotals.grouped(multi.map {
                TensorInfo(name: $0.name, type: .plain(.u8), shape: $0.shape, byteCount: $0.storedBytes)
            }) { t in multi.first { $0.name == t.name }!.storage }
            logicalParameters = logical.reduce(0) { $0 + $1.elementCount }
        }
        metadata = ckpt.metadata
        var listed: [(TensorInfo, TensorStats?)] = []
        for (i, t) in ckpt.tensors.enumerated() where filter.map({ globMatches($0, t.name) }) ?? true {
            if stats {
                listed.append((t, try TensorStats.compute(try ckpt.view(at: i))))
                ckpt.release(t.name)
            } else {
                listed.append((t, nil))
            }
        }
        tensors = listed
        if let json = ckpt.adapterConfig {
            adapter = try AdapterConfig(json: json, file: ckpt.path + "/" + PEFTAdapter.configFile)
            var counts: [Int: Int] = [:]
            for t in ckpt.tensors where t.name.contains("lora_A") || t.name.contains("lora_embedding_A") {
                if let r = t.shape.first { counts[r, default: 0] += 1 }
            }
            adapterRanks = counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        adapterSummary = try AdapterSummary(ckpt)
        if let s = adapterSummary, s.family != .lora { adapterRanks = s.rankHistogram }
    }

    /// Effective bits of tensor data per parameter.
    public var bitsPerParameter: Double {
        totals.parameters > 0 ? Double(totals.bytes) * 8 / Double(totals.parameters) : 0
    }
}
