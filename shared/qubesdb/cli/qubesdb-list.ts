#!/usr/bin/env node
/** `qubesdb-list`: see tool.ts and spec §12. */
import { main } from "./tool.js";

main("list");
