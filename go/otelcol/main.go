// Command otelcol-brokkr is an OpenTelemetry Collector with only what Brokkr's tests
// need: the OTLP receiver, the batch processor, and the OTLP/HTTP and debug
// exporters. Built from the module proxy at the release go.mod pins (tools.toml
// [otelcol]); the tests run it between our services and a receiver of their own.
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// version is stamped by the build (-X main.version=...), so --version names the pin.
var version = "dev"

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-brokkr",
			Description: "OpenTelemetry Collector for Brokkr's tests",
			Version:     version,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			// The command resolves a `${NAME}` without a scheme through "env", and
			// refuses to start unless that provider is listed.
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
				},
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		os.Exit(1) // cobra has printed the error
	}
}
