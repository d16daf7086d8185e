package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"

	"github.com/oncehook/oncehook/bench"
)

// reportCmd merges bench run -json files into RESULTS.md and a chart.
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	jsonPath := fs.String("json", "", "write the merged results as JSON here")
	md := fs.String("md", "", "write the markdown report here (e.g. bench/RESULTS.md)")
	chart := fs.String("chart", "", "write the PNG chart here (e.g. bench/chart.png)")
	setup := fs.String("setup", "", "a markdown file describing the setup, included under the machine")
	command := fs.String("command", "", "the command that made the results, named in the report")
	noTargets := fs.Bool("no-targets", false, "leave the targets out of the report (smoke runs)")
	fills := fs.String("fills", "", "comma-separated JSON files of bench fill -json: the ledger fills made for the runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("report: name the JSON files of bench run -json")
	}
	s, err := bench.ReadSuites(fs.Args()...)
	if err != nil {
		return err
	}
	f, err := bench.ReadFills(splitList(*fills)...)
	if err != nil {
		return err
	}
	s.Fills = append(s.Fills, f...)
	return writeOutputs(s, *jsonPath, *md, *chart, bench.MarkdownOptions{Setup: *setup, Command: *command, NoTargets: *noTargets})
}

// writeOutputs writes whichever of the JSON, markdown and chart are asked
// for, and prints the table. o.Setup names a file, read into the report.
func writeOutputs(s *bench.Suite, jsonPath, mdPath, chartPath string, o bench.MarkdownOptions) error {
	if jsonPath != "" {
		if err := s.WriteJSON(jsonPath); err != nil {
			return err
		}
	}
	if chartPath != "" {
		if err := s.WriteChart(chartPath); err != nil {
			return err
		}
	}
	if mdPath != "" {
		if o.Setup != "" {
			b, err := os.ReadFile(o.Setup)
			if err != nil {
				return err
			}
			o.Setup = string(b)
		}
		if chartPath != "" {
			rel, err := filepath.Rel(filepath.Dir(mdPath), chartPath)
			if err != nil {
				rel = chartPath
			}
			o.Chart = filepath.ToSlash(rel)
		}
		f, err := os.Create(mdPath)
		if err != nil {
			return err
		}
		s.WriteMarkdown(f, o)
		if err := f.Close(); err != nil {
			return err
		}
	}
	s.WriteTable(os.Stdout)
	return nil
}
