// The compiled server reads its migrations and dashboard files next to its own modules, as the
// sources do: copy them into dist/ beside the JavaScript tsc wrote there.
import { cpSync } from 'node:fs';

for (const dir of ['db/migrations', 'web']) cpSync(`src/${dir}`, `dist/${dir}`, { recursive: true });
