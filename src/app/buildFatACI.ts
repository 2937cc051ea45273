import { legacyMain } from '../cli/main.js'

void legacyMain('fat', 'buildFatACI', process.argv.slice(2))
