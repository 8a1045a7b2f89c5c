// Package schematest validates ecmpscan's JSON documents against the JSON
// Schemas in the top-level testdata/ folder, for tests: the golden files in
// report and the real outputs of the end-to-end tests.
package schematest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema files, by document kind.
const (
	Sweep = "sweep.schema.json"
	Trace = "trace.schema.json"
)

var (
	once     sync.Once
	compiled map[string]*jsonschema.Schema
	loadErr  error
)

// Validate checks one document against the schema of its kind.
func Validate(kind string, doc []byte) error {
	once.Do(load)
	if loadErr != nil {
		return loadErr
	}
	s, ok := compiled[kind]
	if !ok {
		return fmt.Errorf("schematest: no schema %q", kind)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(inst)
}

func load() {
	dir, err := testdataDir()
	if err != nil {
		loadErr = err
		return
	}
	c := jsonschema.NewCompiler()
	compiled = map[string]*jsonschema.Schema{}
	for _, kind := range []string{Sweep, Trace} {
		s, err := c.Compile(filepath.Join(dir, kind))
		if err != nil {
			loadErr = fmt.Errorf("compile %s: %w", kind, err)
			return
		}
		compiled[kind] = s
	}
}

// testdataDir is the module's top-level testdata/, found from the working
// directory (a test runs in its package's folder).
func testdataDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("schematest: no go.mod above the working directory")
		}
		dir = parent
	}
}
