package dev.runnel.scenario;

import java.io.FileInputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URI;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import javax.net.ssl.TrustManagerFactory;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;

/**
 * The clients every program here builds from its environment:
 * RUNNEL_ENDPOINT (http:// or https://), RUNNEL_CA_CERT (a PEM certificate
 * to trust for https), RUNNEL_DYNAMODB (the DynamoDB endpoint), and the
 * usual AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION.
 */
final class Clients {
    /** Lines for the test, one record or event a line, flushed at once. */
    static final PrintStream OUT = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true);

    private Clients() {}

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException(name + " is not set");
        }
        return v;
    }

    static String env(String name, String def) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? def : v;
    }

    static Region region() {
        return Region.of(env("AWS_REGION", "us-east-1"));
    }

    static StaticCredentialsProvider credentials() {
        return StaticCredentialsProvider.create(
                AwsBasicCredentials.create(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")));
    }

    /** An HTTP/2 Netty client, as the KCL builds it, trusting RUNNEL_CA_CERT. */
    static NettyNioAsyncHttpClient.Builder http2() throws Exception {
        return netty().protocol(Protocol.HTTP2).maxConcurrency(Integer.MAX_VALUE);
    }

    /**
     * A Netty client that trusts RUNNEL_CA_CERT when it is set. It waits up to a minute
     * for a pooled connection (the SDK's default is 10 s): on a machine busy enough, the
     * producer's burst of calls otherwise fails with "Acquire operation took longer than
     * the configured maximum time" before runnel has answered the first ones.
     */
    static NettyNioAsyncHttpClient.Builder netty() throws Exception {
        NettyNioAsyncHttpClient.Builder b = NettyNioAsyncHttpClient.builder()
                .connectionAcquisitionTimeout(Duration.ofMinutes(1));
        String ca = env("RUNNEL_CA_CERT", "");
        if (!ca.isEmpty()) {
            KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
            ks.load(null, null);
            try (InputStream in = new FileInputStream(ca)) {
                Certificate cert = CertificateFactory.getInstance("X.509").generateCertificate(in);
                ks.setCertificateEntry("runnel", cert);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ks);
            b.tlsTrustManagersProvider(tmf::getTrustManagers);
        }
        return b;
    }

    static KinesisAsyncClient kinesis() throws Exception {
        return KinesisAsyncClient.builder()
                .endpointOverride(URI.create(env("RUNNEL_ENDPOINT")))
                .region(region())
                .credentialsProvider(credentials())
                .httpClientBuilder(http2())
                .build();
    }

    static DynamoDbAsyncClient dynamoDB() throws Exception {
        return DynamoDbAsyncClient.builder()
                .endpointOverride(URI.create(env("RUNNEL_DYNAMODB")))
                .region(region())
                .credentialsProvider(credentials())
                .httpClientBuilder(netty())
                .build();
    }

    /** CloudWatch is never called: the KCL's metrics are off (MetricsLevel NONE). */
    static CloudWatchAsyncClient cloudWatch() throws Exception {
        return CloudWatchAsyncClient.builder()
                .endpointOverride(URI.create(env("RUNNEL_DYNAMODB")))
                .region(region())
                .credentialsProvider(credentials())
                .httpClientBuilder(netty())
                .build();
    }
}
