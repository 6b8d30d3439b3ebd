package main
import (
 _ "github.com/cockroachdb/pebble/v2"
 _ "github.com/aws/aws-sdk-go-v2/service/kinesis"
 _ "github.com/aws/aws-sdk-go-v2/config"
 _ "github.com/aws/aws-sdk-go-v2/credentials"
 _ "github.com/spf13/cobra"
 _ "github.com/stretchr/testify/require"
 _ "golang.org/x/sync/errgroup"
)
func main(){}
