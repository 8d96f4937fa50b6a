export * from "./client.js";
export * from "./codec.js";
export * from "./daemon.js";
export * from "./errors.js";
export * from "./path-rules.js";
export * from "./socket.js";
export * from "./store.js";
export type * from "./types.js";
