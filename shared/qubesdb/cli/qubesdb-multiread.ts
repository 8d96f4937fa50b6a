#!/usr/bin/env node
/** `qubesdb-multiread`: see tool.ts and spec §12. */
import { main } from "./tool.js";

main("multiread");
