/** The ProxyVM firewall: compiler (pure), DNS resolution, applier and the reconcile-loop component. */
export {
  type CompiledVm,
  compileFullScript,
  compileRemovalScript,
  compileVm,
  compileVmScript,
  type VmInput,
} from "./compile.js";
export {
  createFirewallComponent,
  type FirewallComponent,
  type FirewallComponentOptions,
  type FirewallVmStatus,
} from "./component.js";
export { TABLE4, TABLE6 } from "./family.js";
export { createDnsLookup, HostCache, type LookupFn } from "./resolve.js";
