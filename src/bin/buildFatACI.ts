#!/usr/bin/env node
import { legacyMain } from '../cli/main.js'

await legacyMain('fat', 'buildFatACI', process.argv.slice(2))
