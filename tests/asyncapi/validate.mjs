// Parse an AsyncAPI document with the official parser; print its diagnostics as JSON
// (severity 0 error, 1 warning, 2 information, 3 hint) and whether it parsed.
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[2], 'utf8'));
const found = diagnostics.map((d) => ({
  severity: d.severity,
  code: d.code,
  message: d.message,
  path: d.path,
}));
console.log(JSON.stringify({ parsed: document !== undefined, diagnostics: found }));
