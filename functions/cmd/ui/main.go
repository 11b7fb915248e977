// Command ui is the page function (/ and /static) as an AWS Lambda entry
// point. Configuration comes from HERD_FUNCTIONS_* environment variables.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/herd-hpc/herd/functions/lambda"
	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/functions/ui"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := server.LoadConfig("", os.Getenv)
	if err != nil {
		log.Error("ui function: configuration", "err", err)
		os.Exit(1)
	}
	fns, err := server.Open(context.Background(), cfg, ui.NewHandler, log)
	if err != nil {
		log.Error("ui function: open store", "err", err)
		os.Exit(1)
	}
	lambda.Start(fns.UI)
}
