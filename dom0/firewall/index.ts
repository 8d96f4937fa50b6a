export { activeRules, nextExpiry } from "./expiry.js";
export {
  FIREWALL_FILE,
  firewallXmlPath,
  formatFirewallXml,
  loadFirewall,
  MAX_FIREWALL_XML_BYTES,
  parseFirewallXml,
  saveFirewall,
} from "./firewall-xml.js";
