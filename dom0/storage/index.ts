export { APPVMS_DIR, FilePool } from "./file-pool.js";
export { LvmThinPool, lvName, runLvm } from "./lvm-pool.js";
export { openPool } from "./open-pool.js";
export * from "./pool.js";
