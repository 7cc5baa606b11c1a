import java.sql.*;

public class ShoalJdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/lake?sslmode=disable";
        String user = args.length > 2 ? args[2] : "ana";  // a token id: SCRAM-SHA-256; any other: cleartext
        try (Connection c = DriverManager.getConnection(url, user, args[1])) {
            try (Statement s = c.createStatement();
                 ResultSet r = s.executeQuery("select team, count(*) as n from support.tickets group by team order by team")) {
                while (r.next()) System.out.println("count|" + r.getString(1) + "|" + r.getLong(2));
            }
            try (PreparedStatement p = c.prepareStatement("select id, csat from support.tickets where id < ? order by id")) {
                p.setInt(1, 3);
                for (int round = 0; round < 6; round++) {  // past prepareThreshold (5): a named server-side statement
                    try (ResultSet r = p.executeQuery()) {
                        StringBuilder b = new StringBuilder("prepared|" + round);
                        while (r.next()) b.append("|").append(r.getLong(1));
                        System.out.println(b);
                    }
                }
            }
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product|" + md.getDatabaseProductName() + "|" + md.getDatabaseProductVersion());
            try (ResultSet r = md.getSchemas()) {
                while (r.next()) System.out.println("schema|" + r.getString("TABLE_SCHEM"));
            }
            try (ResultSet r = md.getTables(null, "support", "%", new String[] {"TABLE"})) {
                while (r.next()) System.out.println("table|" + r.getString("TABLE_SCHEM") + "." + r.getString("TABLE_NAME"));
            }
            try (ResultSet r = md.getColumns(null, "support", "tickets", "%")) {
                while (r.next()) System.out.println("column|" + r.getString("COLUMN_NAME") + "|" + r.getString("TYPE_NAME"));
            }
        }
    }
}
