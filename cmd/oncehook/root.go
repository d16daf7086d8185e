package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCmd is the oncehook command and its subcommands. Building it has
// no side effect: each command connects, migrates or listens in its RunE
// only, which --help never reaches.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "oncehook",
		Short: "Receive Stripe webhooks, store each event once, deliver it at least once",
		Long: `oncehook receives Stripe webhooks, verifies and stores each event once, and
delivers it to every destination whose filter it matches, at least once.

Without a command it serves (see "oncehook serve --help"). Configuration is
read from the environment: see docs/configuration.md, and "oncehook config" to check it.`,
		Version:       versionText(),
		SilenceErrors: true, // main prints them, prefixed "oncehook:"
		SilenceUsage:  true,
		RunE:          runServe,
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %q)", err, c.CommandPath()+" --help")
	})
	root.AddCommand(newServeCmd(), newMigrateCmd(), newSendTestEventCmd(), newEventsCmd(), newReplayCmd(),
		newDestinationsCmd(), newReconcileCmd(), newStripeCmd(), newConfigCmd(), newVersionCmd())
	return root
}

// groupCmd makes c a command that only holds subcommands: alone it prints
// its help; an unknown subcommand is an error.
func groupCmd(c *cobra.Command) *cobra.Command {
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return fmt.Errorf("unknown %s command %q: want %s", cmd.Name(), args[0], strings.Join(names, " or "))
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return c
}

// noArgs refuses positional arguments, pointing at the command's help.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q (see %q)", args[0], cmd.CommandPath()+" --help")
	}
	return nil
}

// exactArgs takes n positional arguments, named in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s %s (see %q)", cmd.CommandPath(), names, cmd.CommandPath()+" --help")
		}
		return nil
	}
}

// longDashes rewrites -name and -name=value as --name for the long flags
// of the command args run: the commands took both spellings before they
// moved to cobra (send-test-event -url URL, events list -status dead), and
// scripts still use them. Arguments after "--" are left as they are.
func longDashes(root *cobra.Command, args []string) []string {
	c, _, err := root.Find(args)
	if err != nil || c == nil {
		c = root
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && (c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil) {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
