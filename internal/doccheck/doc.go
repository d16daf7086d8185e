// Package doccheck keeps the documentation true to the code: the
// configuration reference (docs/configuration.md) against the variables
// cmd/oncehook reads, and the relative links of the Markdown pages against
// the files and headings they point at. The docs package's test runs it on
// the repository; deploy's compose test uses its variable scans.
package doccheck
