import { legacyMain } from '../cli/main.js'

void legacyMain('thin', 'buildThinACI', process.argv.slice(2))
