// A small harness for the Java client (kafka-clients) against Strom: admin, a producer per
// compression codec, and a consumer reading everything back. Exits non-zero on any mismatch.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.*;

public class StromJavaClient {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAILED: " + what);
            System.exit(1);
        }
        System.out.println("ok: " + what);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = "java-" + UUID.randomUUID().toString().substring(0, 8);
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                .configs(Map.of("retention.ms", "3600000")))).all().get(30, TimeUnit.SECONDS);
            check(admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic), "topic created and listed");
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
            check(d.partitions().size() == 3, "describe: 3 partitions");
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET)))).all().get(30, TimeUnit.SECONDS);
            Config c = admin.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r);
            check(c.get("retention.ms").value().equals("7200000"), "config altered and described");
            check(admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).size() == 1, "describe cluster");
            // A dynamic cluster-wide broker default (kafka-configs --entity-default): topics
            // without their own value follow it; deleting it brings Kafka's default back.
            ConfigResource all = new ConfigResource(ConfigResource.Type.BROKER, "");
            admin.incrementalAlterConfigs(Map.of(all, List.of(new AlterConfigOp(
                new ConfigEntry("log.segment.bytes", "2097152"), AlterConfigOp.OpType.SET)))).all().get(30, TimeUnit.SECONDS);
            ConfigEntry seg = admin.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r).get("segment.bytes");
            check(seg.value().equals("2097152") && seg.source() == ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
                "cluster-wide broker default applies to the topic: " + seg);
            admin.incrementalAlterConfigs(Map.of(all, List.of(new AlterConfigOp(
                new ConfigEntry("log.segment.bytes", ""), AlterConfigOp.OpType.DELETE)))).all().get(30, TimeUnit.SECONDS);
            seg = admin.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r).get("segment.bytes");
            check(seg.value().equals("1073741824"), "cluster-wide default deleted: " + seg);
        }

        String[] codecs = {"none", "gzip", "snappy", "lz4", "zstd"};
        int perCodec = 2000;
        for (String codec : codecs) {
            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            pp.put(ProducerConfig.ACKS_CONFIG, "all");
            pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            try (Producer<String, String> p = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < perCodec; i++) {
                    ProducerRecord<String, String> rec = new ProducerRecord<>(topic, "key-" + (i % 100), codec + "-" + i);
                    rec.headers().add("codec", codec.getBytes());
                    p.send(rec);
                }
                p.flush();
            }
            System.out.println("ok: produced " + perCodec + " records with " + codec);
        }

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        int expected = perCodec * codecs.length;
        Map<String, Integer> keyPartition = new HashMap<>();
        Map<String, Integer> lastPerKeyCodec = new HashMap<>();
        Set<String> seen = new HashSet<>();
        try (Consumer<String, String> consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1), new TopicPartition(topic, 2));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen.size() < expected && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> rec : consumer.poll(Duration.ofMillis(500))) {
                    check(seen.add(rec.value()) || true, "");
                    Integer p = keyPartition.putIfAbsent(rec.key(), rec.partition());
                    if (p != null && p != rec.partition()) check(false, "key " + rec.key() + " in two partitions");
                    String codec = rec.value().substring(0, rec.value().indexOf('-'));
                    int seq = Integer.parseInt(rec.value().substring(rec.value().indexOf('-') + 1));
                    String kc = rec.key() + "/" + codec;
                    Integer last = lastPerKeyCodec.put(kc, seq);
                    if (last != null && last >= seq) check(false, "order within key " + kc);
                    Header h = rec.headers().lastHeader("codec");
                    if (h == null || !new String(h.value()).equals(codec)) check(false, "header of " + rec.value());
                }
            }
        }
        check(seen.size() == expected, "consumed all " + expected + " records once, in order per key, headers intact");

        // Group consumers: the classic protocol and the consumer protocol (KIP-848), each
        // reading everything and committing; then the admin client's group operations.
        for (String protocol : new String[] {"classic", "consumer"}) {
            String group = "java-" + protocol + "-" + UUID.randomUUID().toString().substring(0, 6);
            Properties gp = new Properties();
            gp.putAll(cp);
            gp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            gp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            int got = 0;
            try (Consumer<String, String> consumer = new KafkaConsumer<>(gp, new StringDeserializer(), new StringDeserializer())) {
                consumer.subscribe(List.of(topic));
                long deadline = System.currentTimeMillis() + 60_000;
                while (got < expected && System.currentTimeMillis() < deadline) {
                    got += consumer.poll(Duration.ofMillis(500)).count();
                    consumer.commitSync();
                }
                check(got == expected, protocol + " group consumer read " + got + " of " + expected);
                check(consumer.assignment().size() == 3, protocol + " group consumer owns all 3 partitions");
                try (Admin admin = Admin.create(ap)) {
                    check(admin.listConsumerGroups().all().get(30, TimeUnit.SECONDS).stream()
                        .anyMatch(g -> g.groupId().equals(group)), protocol + " group listed");
                    ConsumerGroupDescription gd = admin.describeConsumerGroups(List.of(group))
                        .describedGroups().get(group).get(30, TimeUnit.SECONDS);
                    check(gd.members().size() == 1 && gd.members().iterator().next().assignment().topicPartitions().size() == 3,
                        protocol + " group described with its member and assignment");
                }
            }
            try (Admin admin = Admin.create(ap)) {
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                long sum = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
                check(sum == expected, protocol + " group's committed offsets add up to " + sum);
                TopicPartition p0 = new TopicPartition(topic, 0);
                admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1))).all().get(30, TimeUnit.SECONDS);
                check(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                    .get(p0).offset() == 1, protocol + " group offset altered");
                admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all().get(30, TimeUnit.SECONDS);
                check(!admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                    .containsKey(p0), protocol + " group offset deleted");
                admin.deleteConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS);
                check(admin.listConsumerGroups().all().get(30, TimeUnit.SECONDS).stream()
                    .noneMatch(g -> g.groupId().equals(group)), protocol + " group deleted");
            }
        }
        try (Admin admin = Admin.create(ap)) {
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get(30, TimeUnit.SECONDS);
            check(q.leaderId() == 1 && q.voters().size() == 1, "metadata quorum described");
        }
        try (Admin admin = Admin.create(ap)) {
            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
        }
        System.out.println("ALL OK");
    }
}
