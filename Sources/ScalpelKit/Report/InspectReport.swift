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
    }

    /// Effective bits of tensor data per parameter.
    public var bitsPerParameter: Double {
        totals.parameters > 0 ? Double(totals.bytes) * 8 / Double(totals.parameters) : 0
    }
}
