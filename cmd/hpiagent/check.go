package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// cmdCheck checks a configuration file: its keys and values and, with
// -secrets, that every secret it names can be read (run it where the
// agent runs, e.g. with systemd-run -p LoadCredentialEncrypted=...). It
// prints the first problem with its key and line.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/hpiagent/hpiagent.yaml", "configuration `file`")
	secrets := fs.Bool("secrets", false, "also read every secret the configuration names (never printed)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	if *secrets {
		if _, err := cfg.ReadSecrets(&SecretReader{LookupEnv: os.LookupEnv, Prompt: TerminalPrompt(os.Stdin, stderr)}); err != nil {
			return fmt.Errorf("configuration %s: %w", *path, err)
		}
	}
	fmt.Fprintf(stdout, "%s: configuration OK (%d shelves, API %s, PET receiver %s)\n", *path, len(cfg.Shelves), onOff(cfg.API.Listen), onOff(cfg.PET.Listen))
	return nil
}

func onOff(listen string) string {
	if listen == "" {
		return "off"
	}
	return "on " + listen
}
