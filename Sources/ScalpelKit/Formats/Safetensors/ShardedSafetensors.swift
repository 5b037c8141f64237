enum ShardedSafetensors {
    static func open(indexPath: String) throws -> Checkpoint { fatalError() }
    static func open(folder: String, shards: [String]) throws -> Checkpoint { fatalError() }
}
