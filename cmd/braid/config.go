package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// applySources fills every flag the command line left unset, first from
// the environment (BRAID_<FLAG>, upper case, '-' as '_'; a repeated flag
// takes a comma-separated list), then from the TOML file named by
// --config, whose keys are the flag names. A [[forward]] table in the
// file adds one -L (local = ...), -R (remote = ...) or -D (dynamic = ...)
// forward. Unknown keys are errors, so a typo does not pass unnoticed.
func applySources(fs *pflag.FlagSet, configFile string) error {
	var fileErr error
	file := map[string]any{}
	if configFile != "" {
		if _, err := toml.DecodeFile(configFile, &file); err != nil {
			return fmt.Errorf("config file %s: %w", configFile, err)
		}
	}
	// Forwards from the file.
	if fw, ok := file["forward"]; ok {
		delete(file, "forward")
		tables, ok := fw.([]map[string]any)
		if !ok {
			return fmt.Errorf("config file %s: forward must be an array of tables ([[forward]])", configFile)
		}
		for i, t := range tables {
			if len(t) != 1 {
				return fmt.Errorf("config file %s: [[forward]] #%d must have exactly one of local, remote or dynamic", configFile, i+1)
			}
			for k, v := range t {
				spec, ok := v.(string)
				if !ok {
					return fmt.Errorf("config file %s: [[forward]] #%d: %s must be a string like \"8080:localhost:80\"", configFile, i+1, k)
				}
				var flag string
				switch k {
				case "local":
					flag = "local"
				case "remote":
					flag = "remote"
				case "dynamic":
					flag = "dynamic"
				default:
					return fmt.Errorf("config file %s: [[forward]] #%d: unknown key %q (use local, remote or dynamic)", configFile, i+1, k)
				}
				if fs.Lookup(flag) == nil {
					return fmt.Errorf("config file %s: [[forward]] is for the client", configFile)
				}
				file[flag] = append(asList(file[flag]), spec)
			}
		}
	}
	keys := make([]string, 0, len(file))
	for k := range file {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil || k == "config" {
			return fmt.Errorf("config file %s: unknown key %q (keys are the command's flag names; see braid help)", configFile, k)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if fileErr != nil || f.Changed {
			return
		}
		env := "BRAID_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if err := setFlag(f, splitList(f, v)); err != nil {
				fileErr = fmt.Errorf("%s=%q: %v", env, v, err)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			vals, err := fileValues(v)
			if err == nil {
				err = setFlag(f, vals)
			}
			if err != nil {
				fileErr = fmt.Errorf("config file %s: %s: %v", configFile, f.Name, err)
			}
		}
	})
	return fileErr
}

func asList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		return []any{v}
	}
}

func isList(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Array") || strings.HasSuffix(t, "Slice")
}

func splitList(f *pflag.Flag, v string) []string {
	if !isList(f) {
		return []string{v}
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fileValues(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case bool, int64, float64:
		return []string{fmt.Sprint(v)}, nil
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list elements must be strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value %v", v)
}

func setFlag(f *pflag.Flag, vals []string) error {
	if len(vals) > 1 && !isList(f) {
		return fmt.Errorf("takes one value, got %d", len(vals))
	}
	for _, v := range vals {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}
