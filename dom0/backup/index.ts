export { type BackupOptions, type BackupSummary, writeBackup } from "./backup.js";
export { ByteSource, TruncatedError } from "./byte-source.js";
export { CompressProgramError, startCompressProgram } from "./compress.js";
export { type RestoredVm, RestoreError, type RestoreOptions, restoreBackup } from "./restore.js";
export { dataSize, type Extent, formatSparseMap, type SparseMap, SparseMapBuilder } from "./sparse-map.js";
export { CorruptArchiveError, type TarEntry, TarReader } from "./tar-reader.js";
export { createTarStream, type TarProgress, type TarStream } from "./tar-writer.js";
export type { RestoreTarget, VmSource } from "./vm-source.js";
