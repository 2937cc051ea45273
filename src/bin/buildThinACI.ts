#!/usr/bin/env node
import { legacyMain } from '../cli/main.js'

await legacyMain('thin', 'buildThinACI', process.argv.slice(2))
