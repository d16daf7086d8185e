package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/oncehook/oncehook/internal/buildinfo"
	"github.com/oncehook/oncehook/migrations"
)

// versionText is what `oncehook version` and `oncehook --version` print:
// the build, and the schema version this binary migrates to and needs.
func versionText() string {
	return fmt.Sprintf("oncehook %s\ncommit   %s\ngo       %s\nschema   %d\n",
		buildinfo.Version(), buildinfo.Commit(), buildinfo.GoVersion(), migrations.Latest())
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and the schema version this binary needs",
		Long: `Print the version, the commit it was built from, the Go that built it, and
the schema version it needs: "oncehook migrate" (or serve) brings a database
to it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText())
			return err
		},
	}
}
