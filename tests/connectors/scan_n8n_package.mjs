// Runs n8n's community-package scanner (@n8n/scan-community-package) on a local package, with the two legs its
// `analyzePackageByName` runs after downloading: the sources (TypeScript and package.json) and the packed tarball
// (compiled JavaScript and package.json). Usage: node scan_n8n_package.mjs <scanner.mjs> <sources> <unpacked tarball>
// Prints the scanner's findings and exits 1 if either leg fails.
const [scannerPath, sources, packed] = process.argv.slice(2);
const { analyzePackage, SOURCE_FILE_PATTERNS } = await import(scannerPath);
const legs = [
  ['sources', await analyzePackage(sources, SOURCE_FILE_PATTERNS)],
  ['tarball', await analyzePackage(packed, ['**/*.js', 'package.json'])],
];
let failed = false;
for (const [name, result] of legs) {
  console.log(`${name}: ${result.passed ? 'passed' : `FAILED: ${result.message}`}`);
  if (result.details) console.log(result.details);
  failed ||= !result.passed;
}
process.exit(failed ? 1 : 0);
