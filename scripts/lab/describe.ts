/** What `up` prints: one line per VM with its namespace, native IP and role (pure). */
import type { LabState } from "./state.js";
import { SERVER_IP } from "./topology.js";

export function describeLab(state: LabState): string[] {
  const width = Math.max(...state.vms.map((v) => v.name.length));
  const lines = state.vms.map((vm) => {
    const native = state.nativeIps[vm.name] ?? "?";
    const what =
      vm.role === "netvm"
        ? `test server ${SERVER_IP} (tcp+udp echo 7, http 80)`
        : vm.role === "proxyvm"
          ? "runs qubes-fakeip-agent (supervised)"
          : vm.features["net.fake-ip"] !== undefined
            ? `eth0 ↔ ${vm.vif}, fake IP ${vm.features["net.fake-ip"]} gw ${vm.features["net.fake-gateway"]}`
            : `eth0 ↔ ${vm.vif}, no fake IP`;
    return `  ${vm.name.padEnd(width)}  ${native.padEnd(13)} ${vm.ns.padEnd(width + state.prefix.length)}  ${what}`;
  });
  const status =
    state.problems.length === 0
      ? `lab ${state.id} is up: ${state.vms.length} VMs; logs in ${state.logDir}`
      : `lab ${state.id} is up with ${state.problems.length} problem(s); "check" shows what they break, "down" removes it`;
  return [...lines, status];
}
