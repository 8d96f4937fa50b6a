#!/usr/bin/env node
/** `qubesdb-cmd -c CMD ...`: the command comes from `-c`, which must be the first argument (spec §12). */
import { main } from "./tool.js";

main(undefined);
