// pgjdbc against a router: prepared statements (server-prepared after
// reuse), a transaction with a savepoint rolled back, typed results
// (int, long, BigDecimal, Timestamp, boolean), batch inserts, and
// DatabaseMetaData's tables, columns, keys, references and indexes. Prints
// "ok".
// usage: java -cp /usr/share/java/postgresql.jar Basic.java PORT
import java.math.BigDecimal;
import java.sql.*;

public class Basic {
    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/t?user=t";
        try (Connection c = DriverManager.getConnection(url)) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE jb (id BIGINT PRIMARY KEY, qty integer NOT NULL, "
                        + "price numeric(10,2), at timestamp, ok boolean, note varchar(20))");
            }
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement(
                    "INSERT INTO jb (id, qty, price, at, ok, note) VALUES (?, ?, ?, ?, ?, ?)")) {
                // Six runs: pgjdbc switches to a named server-side statement at the fifth.
                for (int i = 1; i <= 6; i++) {
                    p.setLong(1, i);
                    p.setInt(2, i * 10);
                    p.setBigDecimal(3, new BigDecimal("12.25"));
                    p.setTimestamp(4, Timestamp.valueOf("2024-01-02 03:04:05"));
                    p.setBoolean(5, i % 2 == 0);
                    p.setString(6, "n" + i);
                    p.addBatch();
                }
                p.executeBatch();
            }
            Savepoint sp = c.setSavepoint("s");
            try (Statement s = c.createStatement()) {
                s.execute("DELETE FROM jb");
            }
            c.rollback(sp);
            c.commit();
            c.setAutoCommit(true);
            try (PreparedStatement q = c.prepareStatement(
                    "SELECT qty, price, at, ok, note, id FROM jb WHERE id = ?")) {
                for (int round = 0; round < 6; round++) {
                    q.setLong(1, 2);
                    try (ResultSet r = q.executeQuery()) {
                        check(r.next(), "row 2 is there");
                        check(r.getInt(1) == 20, "qty");
                        check(r.getBigDecimal(2).compareTo(new BigDecimal("12.25")) == 0, "price");
                        check(r.getTimestamp(3).equals(Timestamp.valueOf("2024-01-02 03:04:05")), "at");
                        check(r.getBoolean(4), "ok");
                        check(r.getString(5).equals("n2"), "note");
                        check(r.getLong(6) == 2L, "id");
                        check(r.getMetaData().getColumnType(1) == Types.INTEGER, "qty is int4");
                        check(r.getMetaData().getColumnType(2) == Types.NUMERIC, "price is numeric");
                    }
                }
            }
            try (Statement s = c.createStatement();
                 ResultSet r = s.executeQuery("SELECT count(*) FROM jb")) {
                check(r.next() && r.getLong(1) == 6, "the savepoint undid the delete");
            }
            DatabaseMetaData md = c.getMetaData();
            try (ResultSet r = md.getTables(null, "public", "jb", new String[] {"TABLE"})) {
                check(r.next() && r.getString("TABLE_NAME").equals("jb"), "getTables finds jb");
            }
            try (ResultSet r = md.getColumns(null, "public", "jb", null)) {
                StringBuilder cols = new StringBuilder();
                while (r.next()) {
                    cols.append(r.getString("COLUMN_NAME")).append(':').append(r.getString("TYPE_NAME")).append(' ');
                }
                check(cols.toString().equals("id:int8 qty:int4 price:numeric at:timestamp ok:bool note:varchar "),
                        "getColumns: " + cols);
            }
            // What DBeaver-style browsers read: keys, indexes, references.
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE jc (id BIGINT PRIMARY KEY, jb_id BIGINT REFERENCES jb (id), tag varchar(8) UNIQUE)");
            }
            try (ResultSet r = md.getPrimaryKeys(null, "public", "jb")) {
                check(r.next() && r.getString("COLUMN_NAME").equals("id"), "getPrimaryKeys");
            }
            try (ResultSet r = md.getImportedKeys(null, "public", "jc")) {
                check(r.next() && r.getString("PKTABLE_NAME").equals("jb")
                        && r.getString("FKCOLUMN_NAME").equals("jb_id"), "getImportedKeys");
            }
            try (ResultSet r = md.getIndexInfo(null, "public", "jc", true, false)) {
                StringBuilder names = new StringBuilder();
                while (r.next()) {
                    names.append(r.getString("INDEX_NAME")).append(' ');
                }
                check(names.toString().contains("jc_tag_key") && names.toString().contains("jc_pkey"),
                        "getIndexInfo: " + names);
            }
        }
        System.out.println("ok");
    }
}
