// Command boot is the boot function (/boot/...) as an AWS Lambda entry
// point. Configuration comes from HERD_FUNCTIONS_* environment variables.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/herd-hpc/herd/functions/lambda"
	"github.com/herd-hpc/herd/functions/server"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := server.LoadConfig("", os.Getenv)
	if err != nil {
		log.Error("boot function: configuration", "err", err)
		os.Exit(1)
	}
	fns, err := server.Open(context.Background(), cfg, nil, log)
	if err != nil {
		log.Error("boot function: open store", "err", err)
		os.Exit(1)
	}
	lambda.Start(fns.Boot)
}
