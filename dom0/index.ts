/** dom0's public surface: the store, the model, the emitter. Importing this module does no I/O. */
export * from "./emitter/apply.js";
export * from "./emitter/owned-keys.js";
export * from "./emitter/plan.js";
export * from "./emitter/publish.js";
export * from "./model/collection.js";
export * from "./model/edit.js";
export * from "./model/features.js";
export * from "./model/network.js";
export * from "./model/properties.js";
export * from "./store/lock.js";
export * from "./store/qubes-xml.js";
export * from "./store/store.js";
