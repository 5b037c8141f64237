import Foundation

/// Sharded safetensors checkpoints: several `.safetensors` files read as one model, with or without a
/// `model.safetensors.index.json` (`{"metadata": {"total_size": N}, "weight_map": {tensor: file}}`).
public enum ShardedSafetensors {
    /// Opens the shards an index names. Every tensor of the weight map must be in the shard it names,
    /// and every tensor of every shard must be in the weight map.
    static func open(indexPath: String) throws -> Checkpoint {
        let folder = PathName.folder(indexPath)
        let (weightMap, shardOf, shards) = try parseIndex(try readSmallFile(indexPath), indexPath: indexPath)
        for f in shards where !FileManager.default.fileExists(atPath: folder + "/" + f) {
            let tensor = weightMap.first { $0.1.stringValue == f }?.0
            throw ScalpelError.malformed(file: indexPath, tensor: tensor, reason: "weight_map names \(f), which is not in the folder")
        }
        let ckpt = try open(folder: folder, shards: shards.sorted(), path: indexPath)
        for t in ckpt.tensors where shardOf[t.name] == nil {
            throw ScalpelError.malformed(file: indexPath, tensor: t.name, reason: "tensor is in a shard but not in weight_map")
        }
        for (i, t) in ckpt.tensors.enumerated() {
            let file = PathName.file(ckpt.files[ckpt.locations[i].file].path)
            if shardOf[t.name] != file {
                throw ScalpelError.malformed(file: indexPath, tensor: t.name, reason: "weight_map names \(shardOf[t.name]!) but the tensor is in \(file)")
            }
        }
        if ckpt.tensors.count != shardOf.count {
            let missing = shardOf.keys.filter { ckpt.info(named: $0) == nil }.sorted()
            throw ScalpelError.malformed(file: indexPath, tensor: missing.first, reason: "tensor in weight_map is missing from its shard")
        }
        return ckpt
    }

    /// Parses an index: its weight map (tensor -> shard file name, each a plain name in the same folder)
    /// and the shard names in first-seen order.
    static func parseIndex(_ text: String, indexPath: String) throws -> (weightMap: [(String, JSONValue)], shardOf: [String: String], shards: [String]) {
        let json: JSONValue
        do { json = try JSONParser.parse(text) } catch {
            throw ScalpelError.malformed(file: indexPath, tensor: nil, reason: "\(error)")
        }
        guard let weightMap = json["weight_map"]?.objectValue else {
            throw ScalpelError.malformed(file: indexPath, tensor: nil, reason: "no weight_map object")
        }
        var shardOf: [String: String] = [:]
        var shards: [String] = []
        var seen = Set<String>()
        for (tensor, file) in weightMap {
            guard let f = file.stringValue, !f.isEmpty, !f.contains("/"), f != ".", f != ".." else {
                throw ScalpelError.malformed(file: indexPath, tensor: tensor, reason: "weight_map value is not a file name in the same folder")
            }
            shardOf[tensor] = f
            if seen.insert(f).inserted { shards.append(f) }
        }
        return (weightMap, shardOf, shards)
    }

    /// Opens the given shard files of `folder` as one model. Tensor names must be unique across shards;
    /// the metadata is the first shard's.
    static func open(folder: String, shards: [String], path: String? = nil) throws -> Checkpoint {
        var tensors: [TensorInfo] = []
        var locations: [Checkpoint.Location] = []
        var files: [MappedFile] = []
        var metadata = Metadata()
        var seen: [String: String] = [:]
        var total = 0
        for (k, name) in shards.enumerated() {
            let p = folder + "/" + name
            try checkInsideFolder(p, folder: folder, reportedBy: path ?? p)
            let file = try MappedFile(path: p)
            let h = try SafetensorsHeader.parse(file.bytes, fileLength: file.bytes.count, file: p)
            if k == 0 { metadata = h.metadata }
            for t in h.tensors {
                if let other = seen[t.name] {
                    throw ScalpelError.malformed(file: p, tensor: t.name, reason: "tensor also appears in \(other)")
                }
                seen[t.name] = name
                tensors.append(t)
                locations.append(.init(file: k, start: h.dataStart + t.offset))
            }
            files.append(file)
            total += file.bytes.count
        }
        return Checkpoint(path: path ?? folder, format: .shardedSafetensors, tensors: tensors, locations: locations,
                          files: files, metadata: metadata, fileBytes: total)
    }

    /// A shard must resolve (symbolic links followed) to a file inside the model folder, or to a blob of
    /// the Hugging Face cache the folder is a snapshot of (`.../snapshots/REV/` -> `.../blobs/`): a
    /// checkpoint from the internet must not make Scalpel read files elsewhere on the machine.
    static func checkInsideFolder(_ shard: String, folder: String, reportedBy: String) throws {
        guard let target = realPath(shard) else { return }  // missing: MappedFile names the error
        guard let root = realPath(folder) else { return }
        if PathName.folder(target) == root { return }
        let snapshots = PathName.folder(root)
        if PathName.file(snapshots) == "snapshots" && PathName.folder(target) == PathName.folder(snapshots) + "/blobs" { return }
        throw ScalpelError.malformed(file: reportedBy, tensor: nil,
                                     reason: "shard \(PathName.file(shard)) is a symbolic link to a file outside the model folder")
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The files of a model folder holding `tensors`: shards of at most `shardBytes` bytes of tensor data
    /// named `model-00001-of-0000N.safetensors` plus `model.safetensors.index.json`; when everything fits
    /// one shard, one `model.safetensors` and no index, as Hugging Face's `save_pretrained` does.
    /// Tensors keep their given order across shards.
    static func files(_ tensors: [OutputTensor], metadata: Metadata, shardBytes: Int, folder: String) throws -> [(name: String, content: PlannedContent)] {
        var groups: [[OutputTensor]] = []
        var current: [OutputTensor] = []
        var size = 0
        for t in tensors {
            try t.validate(file: folder)
            if !current.isEmpty && size + t.byteCount > shardBytes {
                groups.append(current)
                current = []
                size = 0
            }
            current.append(t)
            size += t.byteCount
        }
        if !current.isEmpty || groups.isEmpty { groups.append(current) }
        if groups.count == 1 {
            let name = "model.safetensors"
            return [(name, .layout(try SafetensorsWriter.layout(groups[0], metadata: metadata, file: folder + "/" + name)))]
        }
        var files: [(name: String, content: PlannedContent)] = []
        var weightMap: [(String, JSONValue)] = []
        var totalSize = 0
        for (k, group) in groups.enumerated() {
            let name = String(format: "model-%05d-of-%05d.safetensors", k + 1, groups.count)
            files.append((name, .layout(try SafetensorsWriter.layout(group, metadata: metadata, file: folder + "/" + name))))
            for t in group.sorted(by: { $0.name < $1.name }) {
                weightMap.append((t.name, .string(name)))
                totalSize += t.byteCount
            }
        }
        let index: JSONValue = .object([
            ("metadata", .object([("total_size", .int(totalSize))])),
            ("weight_map", .object(weightMap.sorted { $0.0 < $1.0 })),
        ])
        files.append(("model.safetensors.index.json", .bytes(Array((JSONWriter.string(index, style: .pretty) + "\n").utf8))))
        return files
    }
}
